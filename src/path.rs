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
#[derive(Debug, Clone, Eq)]
pub struct AttrPath {
    /// `[schema ":"] name ["." sub]`, one allocation for the whole path.
    text: String,
    /// Where the name starts: 0, or just after the schema's `:`.
    name_at: usize,
    /// Where the name ends: the end of `text`, or the `.` before the sub-attribute.
    name_end: usize,
}

impl AttrPath {
    /// A path to a top-level attribute of the core schema, e.g. `AttrPath::new("userName")`.
    ///
    /// The name is taken as it is, not parsed: `AttrPath::new("name.givenName")` is an
    /// attribute with a dot in its name, which no schema has. Use
    /// [`with_sub_attr`](Self::with_sub_attr), or [`AttrPath::parse`] for text.
    pub fn new(name: impl Into<String>) -> Self {
        let text = name.into();
        AttrPath {
            name_at: 0,
            name_end: text.len(),
            text,
        }
    }

    /// The same path with a sub-attribute, e.g. `AttrPath::new("name").with_sub_attr("givenName")`.
    pub fn with_sub_attr(mut self, sub: impl Into<String>) -> Self {
        self.text.truncate(self.name_end);
        self.text.push('.');
        self.text.push_str(&sub.into());
        self
    }

    /// The same path qualified by a schema URN.
    pub fn with_schema(self, urn: impl Into<String>) -> Self {
        let mut text = urn.into();
        text.push(':');
        let name_at = text.len();
        text.push_str(&self.text[self.name_at..]);
        AttrPath {
            name_at,
            name_end: name_at + (self.name_end - self.name_at),
            text,
        }
    }

    /// The path as written: what `Display` prints, without allocating.
    ///
    /// ```
    /// let path = scimkit::path::AttrPath::parse("name.givenName")?;
    /// assert_eq!(path.as_str(), "name.givenName");
    /// # Ok::<(), scimkit::path::PathError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The schema URN, if the path is qualified.
    pub fn schema(&self) -> Option<&str> {
        self.name_at
            .checked_sub(1)
            .and_then(|end| self.text.get(..end))
    }

    /// The attribute's name.
    pub fn name(&self) -> &str {
        self.text
            .get(self.name_at..self.name_end)
            .unwrap_or_default()
    }

    /// The sub-attribute's name, if any.
    pub fn sub_attr(&self) -> Option<&str> {
        self.text.get(self.name_end + 1..)
    }

    /// Parses an attribute path with the default limits.
    ///
    /// # Errors
    /// A [`PathError`] with the byte offset of the problem; it converts into a 400
    /// `invalidPath` [`Error`].
    pub fn parse(s: &str) -> Result<Self, PathError> {
        parser::parse_attr_path(s, &FilterOptions::default()).map_err(PathError)
    }

    /// A path written as `text`, whose name spans `name_at..name_end` (after the
    /// schema's `:` and before the sub-attribute's `.`, if any); the parser has
    /// checked every part.
    pub(crate) fn from_text(text: &str, name_at: usize, name_end: usize) -> Self {
        AttrPath {
            text: text.to_owned(),
            name_at,
            name_end,
        }
    }

    /// The path without its sub-attribute, and the sub-attribute.
    fn split_sub(mut self) -> (AttrPath, Option<String>) {
        let sub = self.sub_attr().map(str::to_owned);
        self.text.truncate(self.name_end);
        (self, sub)
    }
}

/// Equal when every part is (the text last and, when it is short, a word at a
/// time).
impl PartialEq for AttrPath {
    fn eq(&self, other: &AttrPath) -> bool {
        self.name_at == other.name_at
            && self.name_end == other.name_end
            && same_bytes(self.text.as_bytes(), other.text.as_bytes())
    }
}

/// Hashes every part `PartialEq` compares.
impl std::hash::Hash for AttrPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
        self.name_at.hash(state);
        self.name_end.hash(state);
    }
}

/// `a == b`, without a call to the C library for texts of 8 to 16 bytes, the
/// length of most attribute paths.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=16).contains(&n) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    // The first eight bytes and the last eight (overlapping): every byte.
    word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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
        let (attr, sub_attr) = attr.split_sub();
        Path {
            attr,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths are equal exactly when their texts and parts are, at every length
    /// around the word-at-a-time comparison, whichever byte differs.
    #[test]
    fn equality_is_bytewise_at_every_length() {
        for n in 1..=24 {
            let text: String = (0..n).map(|i| char::from(b'a' + i as u8)).collect();
            let path = AttrPath::new(text.clone());
            assert_eq!(path, AttrPath::new(text.clone()));
            for at in 0..n {
                let mut other = text.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert_ne!(path, AttrPath::new(other), "{n} {at}");
            }
            assert_ne!(path, AttrPath::new(format!("{text}a")));
        }
    }

    /// The one-string form keeps each part apart, however the path was built.
    #[test]
    fn parts_survive_every_way_of_building_a_path() -> Result<(), PathError> {
        let built = AttrPath::new("manager")
            .with_sub_attr("displayName")
            .with_sub_attr("value")
            .with_schema("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
        let parsed: AttrPath =
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".parse()?;
        assert_eq!(built, parsed);
        assert_eq!(
            built.schema(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!((built.name(), built.sub_attr()), ("manager", Some("value")));
        assert_eq!(built.to_string(), parsed.to_string());

        // A name with a dot is a name, not a name and a sub-attribute.
        let dotted = AttrPath::new("name.givenName");
        assert_eq!((dotted.name(), dotted.sub_attr()), ("name.givenName", None));
        assert_ne!(dotted, AttrPath::parse("name.givenName")?);

        let plain = AttrPath::new("userName");
        assert_eq!((plain.schema(), plain.sub_attr()), (None, None));
        let empty_sub = AttrPath::new("emails").with_sub_attr("");
        assert_eq!(empty_sub.sub_attr(), Some(""));

        let path = Path::parse("name.givenName")?;
        assert_eq!(path.attr(), &AttrPath::new("name"));
        assert_eq!(path.sub_attr(), Some("givenName"));
        Ok(())
    }
}
