//! Evaluating a filter against a resource's JSON, guided by its schema
//! (RFC 7644 §3.4.2.2).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::ast::{CompValue, CompareOp, Filter};
use crate::error::{Error, Result};
use crate::path::AttrPath;
use crate::schema::normalize::parse_datetime;
use crate::schema::registry::get_ci;
use crate::schema::{AttrRef, Attribute, AttributeType, ResourceSchema, Returned};

/// Where attribute names are resolved: the resource, or inside a value filter
/// the sub-attributes of one value of a complex attribute.
#[derive(Clone, Copy)]
enum Scope<'a, 'r> {
    Resource(&'a ResourceSchema<'r>),
    Element(&'r Attribute),
}

impl Filter {
    /// Whether the resource matches the filter.
    ///
    /// Attribute names are matched case-insensitively; strings compare by the
    /// attribute's `caseExact`; a multi-valued attribute matches if any value
    /// does; a complex multi-valued attribute without a sub-attribute compares
    /// its `value` sub-attribute; `gt`/`ge`/`lt`/`le` order numbers numerically,
    /// dateTimes chronologically and strings lexically. An attribute the schema
    /// does not define, or one that is never returned (`password`), matches nothing. Call [`Filter::check`] once first to
    /// reject operator and type combinations the RFC calls invalid; here they
    /// simply do not match.
    pub fn matches(&self, schema: &ResourceSchema<'_>, resource: &Value) -> bool {
        match resource.as_object() {
            Some(obj) => eval(self, Scope::Resource(schema), obj),
            None => false,
        }
    }

    /// Checks the filter against the schema: `gt`, `ge`, `lt` and `le` on a
    /// boolean or binary attribute, `co`, `sw` and `ew` on a boolean or number,
    /// a value that cannot be the attribute's type (a dateTime that does not
    /// parse), and a value filter on a simple attribute are errors.
    ///
    /// An attribute whose `returned` is `never` (RFC 7643 §7), such as `password`,
    /// cannot be filtered on at all: a filter on it would reveal, one answer at a
    /// time, what the service never returns.
    ///
    /// ```
    /// use scimkit::{Registry, ScimType, filter::Filter};
    ///
    /// let registry = Registry::core();
    /// let users = registry.resource_type("User").ok_or("no User type")?;
    /// let probe: Filter = r#"password sw "Hu""#.parse()?;
    /// let err = probe.check(&users).unwrap_err();
    /// assert_eq!(err.scim_type(), Some(ScimType::InvalidFilter));
    /// assert!(err.detail().contains("'password'"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// 400 `invalidFilter` naming the attribute and operator.
    pub fn check(&self, schema: &ResourceSchema<'_>) -> Result<()> {
        check(self, Scope::Resource(schema))
    }

    /// [`Filter::check`] for a value filter, whose attribute names are the
    /// sub-attributes of `attr` (a PATCH path's `emails[type eq "work"]`).
    pub(crate) fn check_element(&self, attr: &Attribute) -> Result<()> {
        check(self, Scope::Element(attr))
    }
}

/// A path resolved against the schema: the attribute, the sub-attribute it names,
/// and (in a resource) where the attribute's value lives.
#[derive(Clone, Copy)]
struct Resolved<'r> {
    attr: &'r Attribute,
    sub: Option<&'r Attribute>,
    at: Option<AttrRef<'r>>,
}

impl Resolved<'_> {
    /// The raw value of the path's attribute in `obj`.
    fn raw<'v>(&self, obj: &'v Map<String, Value>) -> Option<&'v Value> {
        match &self.at {
            Some(at) => at.value_in(obj),
            None => get_ci(obj, self.attr.name()),
        }
    }
}

/// Resolves a path once per evaluation step. Returns `None` when the schema does
/// not define the path, or defines it as never returned: a filter must not reveal
/// what a response would not (RFC 7643 §7 `returned`).
fn resolve<'r>(scope: Scope<'_, 'r>, path: &AttrPath) -> Option<Resolved<'r>> {
    resolve_any(scope, path).filter(|r| !r.never_returned())
}

impl Resolved<'_> {
    /// Whether the attribute or the sub-attribute named is `returned: never`.
    fn never_returned(&self) -> bool {
        self.attr.returned() == Returned::Never
            || self.sub.is_some_and(|s| s.returned() == Returned::Never)
    }
}

/// [`resolve`], secrets included, for [`check`] to name them.
fn resolve_any<'r>(scope: Scope<'_, 'r>, path: &AttrPath) -> Option<Resolved<'r>> {
    match scope {
        Scope::Resource(rs) => {
            let found = rs.attribute(path.schema(), path.name())?;
            let sub = match path.sub_attr() {
                Some(sub) => Some(found.attribute.sub_attribute(sub)?),
                None => None,
            };
            Some(Resolved {
                attr: found.attribute,
                sub,
                at: Some(found),
            })
        }
        Scope::Element(parent) => {
            if path.sub_attr().is_some() {
                return None;
            }
            Some(Resolved {
                attr: parent.sub_attribute(path.name())?,
                sub: None,
                at: None,
            })
        }
    }
}

/// The definition that values are compared by: the sub-attribute if named, the
/// `value` sub-attribute of a complex attribute without one, else the attribute.
fn comparand<'r>(attr: &'r Attribute, sub: Option<&'r Attribute>) -> &'r Attribute {
    match sub {
        Some(sub) => sub,
        None if attr.is_complex() => attr.sub_attribute("value").unwrap_or(attr),
        None => attr,
    }
}

/// Calls `f` on every leaf value the path selects; stops at the first `true`.
fn any_value(
    attr: &Attribute,
    sub: Option<&Attribute>,
    raw: &Value,
    mut f: impl FnMut(&Value) -> bool,
) -> bool {
    let leaf_name = match sub {
        Some(sub) => Some(sub.name()),
        None if attr.is_complex() && attr.sub_attribute("value").is_some() => Some("value"),
        None => None,
    };
    let mut visit = |element: &Value| -> bool {
        match leaf_name {
            Some(name) => match element.as_object().and_then(|o| get_ci(o, name)) {
                Some(Value::Array(items)) => items.iter().any(&mut f),
                Some(v) => f(v),
                None => false,
            },
            None => f(element),
        }
    };
    match raw {
        Value::Array(items) => items.iter().any(&mut visit),
        v => visit(v),
    }
}

fn eval(filter: &Filter, scope: Scope<'_, '_>, obj: &Map<String, Value>) -> bool {
    match filter {
        Filter::And(parts) => parts.iter().all(|p| eval(p, scope, obj)),
        Filter::Or(parts) => parts.iter().any(|p| eval(p, scope, obj)),
        Filter::Not(inner) => !eval(inner, scope, obj),
        Filter::Present(path) => {
            let Some(resolved) = resolve(scope, path) else {
                return false;
            };
            let (attr, sub) = (resolved.attr, resolved.sub);
            let Some(raw) = resolved.raw(obj) else {
                return false;
            };
            if sub.is_none() && attr.is_complex() {
                // A complex value is present when it has a non-empty node.
                return match raw {
                    Value::Array(items) => items.iter().any(is_present),
                    v => is_present(v),
                };
            }
            any_value(attr, sub, raw, is_present)
        }
        Filter::Compare(path, op, expected) => {
            let Some(resolved) = resolve(scope, path) else {
                return false;
            };
            let (attr, sub) = (resolved.attr, resolved.sub);
            let raw = resolved.raw(obj);
            let def = comparand(attr, sub);
            let any_eq = |op: CompareOp| match raw {
                Some(raw) => any_value(attr, sub, raw, |v| compare(def, v, op, expected)),
                None => false,
            };
            match (op, expected) {
                (CompareOp::Eq, CompValue::Null) => {
                    !raw.is_some_and(|r| any_value(attr, sub, r, is_present))
                }
                (CompareOp::Ne, CompValue::Null) => {
                    raw.is_some_and(|r| any_value(attr, sub, r, is_present))
                }
                (CompareOp::Ne, _) => !any_eq(CompareOp::Eq),
                (op, _) => any_eq(*op),
            }
        }
        Filter::ValuePath(path, inner) => {
            let Some(
                resolved @ Resolved {
                    attr, sub: None, ..
                },
            ) = resolve(scope, path)
            else {
                return false;
            };
            if !attr.is_complex() {
                return false;
            }
            let Some(raw) = resolved.raw(obj) else {
                return false;
            };
            let element_matches = |v: &Value| {
                v.as_object()
                    .is_some_and(|o| eval(inner, Scope::Element(attr), o))
            };
            match raw {
                Value::Array(items) => items.iter().any(element_matches),
                v => element_matches(v),
            }
        }
    }
}

/// `pr`: not null, not an empty string, list or object.
pub(super) fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        _ => true,
    }
}

/// Compares one actual value with the filter's literal by the attribute's type.
fn compare(def: &Attribute, actual: &Value, op: CompareOp, expected: &CompValue) -> bool {
    match def.attr_type() {
        AttributeType::Boolean => {
            let (Some(a), Some(e)) = (as_bool(actual), comp_bool(expected)) else {
                return false;
            };
            op == CompareOp::Eq && a == e
        }
        AttributeType::Integer | AttributeType::Decimal => {
            let (Some(a), Some(e)) = (as_f64(actual), comp_f64(expected)) else {
                return false;
            };
            match a.partial_cmp(&e) {
                Some(ord) => ordering_matches(op, ord),
                None => false,
            }
        }
        AttributeType::DateTime if !op.is_substring() => {
            let a = actual.as_str().and_then(parse_datetime);
            let e = expected.as_str().and_then(parse_datetime);
            match (a, e) {
                (Some(a), Some(e)) => ordering_matches(op, a.cmp(&e)),
                _ => false,
            }
        }
        AttributeType::Complex => false,
        _ => {
            let Some(a) = actual.as_str() else {
                return false;
            };
            let e = match expected {
                CompValue::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
                CompValue::Number(n) => std::borrow::Cow::Owned(n.to_string()),
                CompValue::Bool(b) => std::borrow::Cow::Owned(b.to_string()),
                CompValue::Null => return false,
            };
            compare_str(a, &e, op, def.compares_case_exact())
        }
    }
}

pub(super) fn ordering_matches(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_str(a: &str, e: &str, op: CompareOp, case_exact: bool) -> bool {
    if !case_exact {
        if a.is_ascii() && e.is_ascii() {
            return match op {
                CompareOp::Eq => a.eq_ignore_ascii_case(e),
                CompareOp::Ne => !a.eq_ignore_ascii_case(e),
                CompareOp::Sw => {
                    a.len() >= e.len() && a.as_bytes()[..e.len()].eq_ignore_ascii_case(e.as_bytes())
                }
                CompareOp::Ew => {
                    a.len() >= e.len()
                        && a.as_bytes()[a.len() - e.len()..].eq_ignore_ascii_case(e.as_bytes())
                }
                _ => compare_exact(&a.to_ascii_lowercase(), &e.to_ascii_lowercase(), op),
            };
        }
        return compare_exact(&a.to_lowercase(), &e.to_lowercase(), op);
    }
    compare_exact(a, e, op)
}

pub(super) fn compare_exact(a: &str, e: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Co => a.contains(e),
        CompareOp::Sw => a.starts_with(e),
        CompareOp::Ew => a.ends_with(e),
        _ => ordering_matches(op, a.cmp(e)),
    }
}

pub(super) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        _ => None,
    }
}

/// Entra ID compares booleans as strings: `primary eq "True"`.
pub(super) fn comp_bool(v: &CompValue) -> Option<bool> {
    match v {
        CompValue::Bool(b) => Some(*b),
        CompValue::String(s) => parse_bool(s),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

pub(super) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn comp_f64(v: &CompValue) -> Option<f64> {
    match v {
        CompValue::Number(n) => n.as_f64(),
        CompValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// 400 `invalidFilter` for a path that names a never-returned attribute.
fn check_returned(scope: Scope<'_, '_>, path: &AttrPath) -> Result<()> {
    match resolve_any(scope, path) {
        Some(r) if r.never_returned() => {
            let name = match r.sub {
                Some(sub) => format!("{}.{}", r.attr.name(), sub.name()),
                None => r.attr.name().to_owned(),
            };
            Err(Error::invalid_filter(format!(
                "'{name}' is never returned (RFC 7643 §7), so it cannot be used in a filter"
            )))
        }
        _ => Ok(()),
    }
}

fn check(filter: &Filter, scope: Scope<'_, '_>) -> Result<()> {
    if let Filter::Compare(path, ..) | Filter::Present(path) | Filter::ValuePath(path, _) = filter {
        check_returned(scope, path)?;
    }
    match filter {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().try_for_each(|p| check(p, scope)),
        Filter::Not(inner) => check(inner, scope),
        Filter::Present(_) => Ok(()),
        Filter::ValuePath(path, inner) => match resolve(scope, path) {
            Some(Resolved {
                attr, sub: None, ..
            }) if attr.is_complex() => check(inner, Scope::Element(attr)),
            Some(_) => Err(Error::invalid_filter(format!(
                "'{path}' is not a complex attribute, so it cannot have a value filter"
            ))),
            None => Ok(()),
        },
        Filter::Compare(path, op, value) => {
            let Some(Resolved { attr, sub, .. }) = resolve(scope, path) else {
                return Ok(());
            };
            let def = comparand(attr, sub);
            let t = def.attr_type();
            let invalid = |why: &str| {
                Err(Error::invalid_filter(format!(
                    "'{path} {op} {value}': {why}"
                )))
            };
            if matches!(value, CompValue::Null) {
                return match op {
                    CompareOp::Eq | CompareOp::Ne => Ok(()),
                    _ => invalid("null can only be compared with eq or ne"),
                };
            }
            match t {
                AttributeType::Boolean | AttributeType::Binary if op.is_ordering() => {
                    invalid(&format!(
                        "{op} cannot be used on the {t} attribute '{path}' (RFC 7644 §3.4.2.2)"
                    ))
                }
                AttributeType::Boolean | AttributeType::Integer | AttributeType::Decimal
                    if op.is_substring() =>
                {
                    invalid(&format!("{op} works on strings, and '{path}' is {t}"))
                }
                AttributeType::Boolean if comp_bool(value).is_none() => {
                    invalid("the value must be true or false")
                }
                AttributeType::Integer | AttributeType::Decimal if comp_f64(value).is_none() => {
                    invalid("the value must be a number")
                }
                AttributeType::DateTime
                    if !op.is_substring() && value.as_str().and_then(parse_datetime).is_none() =>
                {
                    invalid("the value must be a dateTime such as \"2011-05-13T04:42:34Z\"")
                }
                AttributeType::Complex => invalid(&format!(
                    "'{path}' is complex; compare one of its sub-attributes, e.g. '{path}.value'"
                )),
                _ => Ok(()),
            }
        }
    }
}
