//! Attribute paths and PATCH paths: the grammar that filters (RFC 7644 §3.4.2.2)
//! and PATCH (§3.5.2) share.
//!
//! ```
//! use scimkit::path::{AttrPath, Path};
//!
//! let attr: AttrPath = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".parse()?;
//! assert_eq!(attr.schema(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
//! assert_eq!(attr.name(), "manager");
//! assert_eq!(attr.sub_attr(), Some("value"));
//!
//! let path: Path = r#"emails[type eq "work"].value"#.parse()?;
//! assert_eq!(path.attr().name(), "emails");
//! assert!(path.filter().is_some());
//! assert_eq!(path.sub_attr(), Some("value"));
//! assert_eq!(path.to_string(), r#"emails[type eq "work"].value"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::filter::{Filter, FilterError, FilterOptions, parser};

/// An attribute path: `[schema-urn ":"] name ["." sub-attribute]` (RFC 7644 §3.10,
/// the ABNF `attrPath`).
///
/// Names keep the spelling they were written in, so `Display` prints what was
/// parsed; comparisons with a schema are case-insensitive (RFC 7643 §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    schema: Option<String>,
    name: String,
    sub_attr: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute of the core schema, e.g. `AttrPath::new("userName")`.
    ///
    /// The name is taken as it is, not parsed: `AttrPath::new("name.givenName")` is an
    /// attribute with a dot in its name, which no schema has. Use
    /// [`with_sub_attr`](Self::with_sub_attr), or [`AttrPath::parse`] for text.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            schema: None,
            name: name.into(),
            sub_attr: None,
        }
    }

    /// The same path with a sub-attribute, e.g. `AttrPath::new("name").with_sub_attr("givenName")`.
    pub fn with_sub_attr(mut self, sub: impl Into<String>) -> Self {
        self.sub_attr = Some(sub.into());
        self
    }

    /// The same path qualified by a schema URN.
    pub fn with_schema(mut self, urn: impl Into<String>) -> Self {
        self.schema = Some(urn.into());
        self
    }

    /// The schema URN, if the path is qualified.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The attribute's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sub-attribute's name, if any.
    pub fn sub_attr(&self) -> Option<&str> {
        self.sub_attr.as_deref()
    }

    /// Parses an attribute path with the default limits.
    ///
    /// # Errors
    /// A [`PathError`] with the byte offset of the problem; it converts into a 400
    /// `invalidPath` [`Error`].
    pub fn parse(s: &str) -> Result<Self, PathError> {
        parser::parse_attr_path(s, &FilterOptions::default()).map_err(PathError)
    }

    /// Builds a path from its parts; `name` and `sub_attr` must be valid attribute
    /// names (the parser guarantees it).
    pub(crate) fn from_parts(
        schema: Option<String>,
        name: String,
        sub_attr: Option<String>,
    ) -> Self {
        AttrPath {
            schema,
            name,
            sub_attr,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl FromStr for AttrPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, PathError> {
        AttrPath::parse(s)
    }
}

impl TryFrom<&str> for AttrPath {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, PathError> {
        AttrPath::parse(s)
    }
}

/// A PATCH path (RFC 7644 §3.5.2, `PATH = attrPath / valuePath [subAttr]`):
/// an attribute, optionally narrowed to the values a filter selects, optionally
/// down to one sub-attribute of them.
///
/// - `userName`, `name.givenName`, `urn:…:enterprise:2.0:User:manager`: [`Path::attr`] only.
/// - `members[value eq "2819c223"]`: with a [`Path::filter`].
/// - `emails[type eq "work"].value`: a filter and a [`Path::sub_attr`].
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    attr: AttrPath,
    filter: Option<Filter>,
    sub_attr: Option<String>,
}

impl Path {
    /// A path to an attribute (or sub-attribute) with no filter.
    pub fn attribute(attr: AttrPath) -> Self {
        let sub_attr = attr.sub_attr.clone();
        Path {
            attr: AttrPath {
                sub_attr: None,
                ..attr
            },
            filter: None,
            sub_attr,
        }
    }

    /// A value path `attr[filter]`, optionally followed by `.sub_attr`.
    pub fn value(attr: AttrPath, filter: Filter, sub_attr: Option<String>) -> Self {
        Path {
            attr,
            filter: Some(filter),
            sub_attr,
        }
    }

    /// The attribute the path starts from (without its sub-attribute).
    pub fn attr(&self) -> &AttrPath {
        &self.attr
    }

    /// The value filter, for a value path.
    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// The sub-attribute the path ends at, if any.
    pub fn sub_attr(&self) -> Option<&str> {
        self.sub_attr.as_deref()
    }

    /// Parses a PATCH path with the default limits.
    ///
    /// # Errors
    /// A [`PathError`] (400 `invalidPath`) with the byte offset of the problem.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        Path::parse_with(s, &FilterOptions::default())
    }

    /// Parses a PATCH path with the given limits.
    ///
    /// # Errors
    /// A [`PathError`] (400 `invalidPath`) with the byte offset of the problem.
    pub fn parse_with(s: &str, options: &FilterOptions) -> Result<Self, PathError> {
        parser::parse_path(s, options).map_err(PathError)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, PathError> {
        Path::parse(s)
    }
}

impl TryFrom<&str> for Path {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, PathError> {
        Path::parse(s)
    }
}

/// A path that does not parse: a [`FilterError`] that becomes 400 `invalidPath`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path: {0}")]
pub struct PathError(pub FilterError);

impl PathError {
    /// The byte offset of the problem.
    pub fn offset(&self) -> usize {
        self.0.offset()
    }
}

impl From<PathError> for Error {
    fn from(e: PathError) -> Self {
        Error::invalid_path(e.to_string())
    }
}
