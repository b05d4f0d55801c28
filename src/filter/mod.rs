//! The SCIM filter language (RFC 7644 §3.4.2.2): parse, print, evaluate.
//!
//! ```
//! use scimkit::{Registry, filter::Filter};
//! use serde_json::json;
//!
//! let filter: Filter = r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#.parse()?;
//! let registry = Registry::core();
//! let users = registry.resource_type("User").ok_or("no User type")?;
//! filter.check(&users)?; // operators fit the attributes' types
//!
//! let bjensen = json!({
//!     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
//!     "userName": "bjensen",
//!     "userType": "employee",
//!     "emails": [{"type": "work", "value": "bjensen@EXAMPLE.com"}]
//! });
//! assert!(filter.matches(&users, &bjensen)); // userType and emails.value are not caseExact
//! assert_eq!(
//!     filter.to_string(),
//!     r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Parse errors say where and what was expected, and become 400 `invalidFilter`:
//!
//! ```
//! use scimkit::filter::Filter;
//!
//! let err = Filter::parse(r#"userName equals "bjensen""#).unwrap_err();
//! assert_eq!(err.offset(), 9);
//! assert_eq!(
//!     err.to_string(),
//!     r#"expected a comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le) or pr after "userName" at offset 9, found "equals""#
//! );
//! let scim: scimkit::Error = err.into();
//! assert_eq!(scim.scim_type(), Some(scimkit::ScimType::InvalidFilter));
//! ```

mod ast;
mod bound;
mod eval;
pub(crate) mod parser;

use std::str::FromStr;

pub use ast::{CompValue, CompareOp, Filter};
pub use bound::BoundFilter;
pub use parser::{FilterError, FilterErrorKind, FilterOptions};

impl Filter {
    /// Parses a filter with the default limits ([`FilterOptions::default`]).
    ///
    /// # Errors
    /// A [`FilterError`] with the byte offset of the problem; it converts into a
    /// 400 `invalidFilter` [`Error`](crate::Error).
    pub fn parse(input: &str) -> Result<Filter, FilterError> {
        FilterOptions::default().parse(input)
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, FilterError> {
        Filter::parse(s)
    }
}

impl TryFrom<&str> for Filter {
    type Error = FilterError;

    fn try_from(s: &str) -> Result<Self, FilterError> {
        Filter::parse(s)
    }
}
