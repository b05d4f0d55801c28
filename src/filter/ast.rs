//! The filter syntax tree (RFC 7644 §3.4.2.2).

use std::fmt;

use serde_json::Number;

use crate::path::AttrPath;

wire_enum! {
    /// A comparison operator (RFC 7644 §3.4.2.2, Table 3). Read case-insensitively,
    /// written in lower case.
    pub enum CompareOp : "comparison operator" {
        /// Equal.
        Eq => "eq",
        /// Not equal.
        Ne => "ne",
        /// Contains (strings).
        Co => "co",
        /// Starts with (strings).
        Sw => "sw",
        /// Ends with (strings).
        Ew => "ew",
        /// Greater than.
        Gt => "gt",
        /// Less than.
        Lt => "lt",
        /// Greater than or equal.
        Ge => "ge",
        /// Less than or equal.
        Le => "le",
    }
}

impl CompareOp {
    /// Whether the operator orders values (`gt`, `lt`, `ge`, `le`).
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Lt | CompareOp::Ge | CompareOp::Le
        )
    }

    /// Whether the operator matches parts of strings (`co`, `sw`, `ew`).
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// A literal on the right of a comparison (RFC 7644 §3.4.2.2 `compValue`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CompValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A JSON number.
    Number(Number),
    /// A JSON string, unescaped.
    String(String),
}

impl CompValue {
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            CompValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => {
                // serde_json writes a JSON string with every needed escape.
                let json = serde_json::Value::String(s.clone());
                write!(f, "{json}")
            }
        }
    }
}

impl From<&str> for CompValue {
    fn from(s: &str) -> Self {
        CompValue::String(s.to_owned())
    }
}

impl From<String> for CompValue {
    fn from(s: String) -> Self {
        CompValue::String(s)
    }
}

impl From<bool> for CompValue {
    fn from(b: bool) -> Self {
        CompValue::Bool(b)
    }
}

impl From<i64> for CompValue {
    fn from(n: i64) -> Self {
        CompValue::Number(n.into())
    }
}

/// A parsed filter (RFC 7644 §3.4.2.2).
///
/// `and` and `or` hold two or more operands each: `a and b and c` is one
/// [`Filter::And`] of three, so a long chain costs no recursion depth. Grouping
/// parentheses leave no node of their own; `Display` puts back the ones the
/// structure needs, so `parse(display(f)) == f`.
///
/// A filter is a tree a host can walk, for instance to see which attributes it
/// names before deciding how to answer it:
///
/// ```
/// use scimkit::filter::Filter;
/// use scimkit::path::AttrPath;
///
/// fn attributes<'f>(f: &'f Filter, out: &mut Vec<&'f AttrPath>) {
///     match f {
///         Filter::Compare(attr, _, _) | Filter::Present(attr) => out.push(attr),
///         Filter::ValuePath(attr, inner) => {
///             out.push(attr);
///             attributes(inner, out);
///         }
///         Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| attributes(p, out)),
///         Filter::Not(inner) => attributes(inner, out),
///     }
/// }
///
/// let filter: Filter = r#"userName eq "bjensen" and not (emails[type eq "work"])"#.parse()?;
/// let mut names = Vec::new();
/// attributes(&filter, &mut names);
/// let names: Vec<String> = names.iter().map(|a| a.to_string()).collect();
/// assert_eq!(names, ["userName", "emails", "type"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Turning a filter into SQL by hand is where stores go wrong: SQL's `NULL` logic
/// drops resources without the attribute from `ne` and `not`, `%` and `_` in values
/// act as wildcards in `LIKE`, and a database's `lower()` and collation are not
/// SCIM's case rule. The `scimkit-sql` crate of this workspace translates filters so
/// that the database selects exactly what [`Filter::matches`] selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath compareOp compValue`, e.g. `userName eq "bjensen"`.
    Compare(AttrPath, CompareOp, CompValue),
    /// `attrPath pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// All operands match (two or more).
    And(Vec<Filter>),
    /// Any operand matches (two or more).
    Or(Vec<Filter>),
    /// `not (filter)`.
    Not(Box<Filter>),
    /// `attrPath [valFilter]`: some value of a complex attribute matches the inner
    /// filter, whose attribute names are its sub-attributes.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// `attr op value`.
    pub fn compare(attr: AttrPath, op: CompareOp, value: impl Into<CompValue>) -> Self {
        Filter::Compare(attr, op, value.into())
    }

    /// `attr eq value`.
    pub fn eq(attr: AttrPath, value: impl Into<CompValue>) -> Self {
        Filter::Compare(attr, CompareOp::Eq, value.into())
    }

    /// `attr pr`.
    pub fn present(attr: AttrPath) -> Self {
        Filter::Present(attr)
    }

    /// `self and other`, flattened.
    pub fn and(self, other: Filter) -> Self {
        let mut parts = match self {
            Filter::And(parts) => parts,
            f => vec![f],
        };
        match other {
            Filter::And(more) => parts.extend(more),
            f => parts.push(f),
        }
        Filter::And(parts)
    }

    /// `self or other`, flattened.
    pub fn or(self, other: Filter) -> Self {
        let mut parts = match self {
            Filter::Or(parts) => parts,
            f => vec![f],
        };
        match other {
            Filter::Or(more) => parts.extend(more),
            f => parts.push(f),
        }
        Filter::Or(parts)
    }

    /// `not (self)`.
    pub fn negate(self) -> Self {
        Filter::Not(Box::new(self))
    }

    /// `attr[self]`.
    pub fn within(self, attr: AttrPath) -> Self {
        Filter::ValuePath(attr, Box::new(self))
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare(attr, op, value) => write!(f, "{attr} {op} {value}"),
            Filter::Present(attr) => write!(f, "{attr} pr"),
            Filter::And(parts) => write_joined(f, parts, " and ", |p| {
                matches!(p, Filter::Or(_) | Filter::And(_))
            }),
            Filter::Or(parts) => write_joined(f, parts, " or ", |p| matches!(p, Filter::Or(_))),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath(attr, inner) => write!(f, "{attr}[{inner}]"),
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    parts: &[Filter],
    joiner: &str,
    needs_parens: impl Fn(&Filter) -> bool,
) -> fmt::Result {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(joiner)?;
        }
        if needs_parens(part) {
            write!(f, "({part})")?;
        } else {
            write!(f, "{part}")?;
        }
    }
    Ok(())
}
