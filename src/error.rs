//! The SCIM error: an HTTP status, an optional `scimType` and a human `detail`.
//!
//! Every failure in this crate becomes an [`Error`]. It knows its HTTP status
//! ([`Error::status`]), its `scimType` keyword where RFC 7644 §3.12 defines one
//! ([`Error::scim_type`]) and a `detail` that tells a person what to fix
//! ([`Error::detail`]). [`ErrorResponse`] is the JSON body a service sends:
//!
//! ```
//! use scimkit::{Error, ErrorResponse, ScimType};
//!
//! let err = Error::invalid_filter("expected a comparison operator after \"userName\" at offset 9");
//! assert_eq!(err.status(), 400);
//! assert_eq!(err.scim_type(), Some(ScimType::InvalidFilter));
//!
//! let body = serde_json::to_value(ErrorResponse::from(&err))?;
//! assert_eq!(body["status"], "400"); // a string, as RFC 7644 §3.12 says
//! assert_eq!(body["scimType"], "invalidFilter");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema URN of a SCIM error response (RFC 7644 §3.12).
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A `Result` whose error is a SCIM [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `scimType` keywords of RFC 7644 §3.12 (Table 9), and those RFC 9865 §2.1
/// adds for cursor pagination.
///
/// Each keyword is spelled in exactly one place ([`ScimType::as_str`]); `Display`,
/// `FromStr` and serde go through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScimType {
    /// The filter syntax was invalid, or the attribute and operator combination is not supported.
    InvalidFilter,
    /// The filter yields more results than the server is willing to calculate or process.
    TooMany,
    /// One or more of the attribute values are already in use or are reserved.
    Uniqueness,
    /// The attempted modification is not compatible with the target attribute's mutability.
    Mutability,
    /// The request body structure was invalid or did not conform to the request schema.
    InvalidSyntax,
    /// The `path` attribute was invalid or malformed.
    InvalidPath,
    /// The specified `path` did not yield an attribute or attribute value that could be operated on.
    NoTarget,
    /// A required value was missing, or the value specified was not compatible with the operation,
    /// attribute type or resource schema.
    InvalidValue,
    /// The specified SCIM protocol version is not supported.
    InvalidVers,
    /// The request cannot be completed because of sensitive information in the request URI.
    Sensitive,
    /// The cursor is not one the server returned (RFC 9865 §2.1).
    InvalidCursor,
    /// The cursor has expired (RFC 9865 §2.1).
    ExpiredCursor,
    /// The count is out of range, or differs from the first page's (RFC 9865 §2.1).
    InvalidCount,
}

impl ScimType {
    /// Every keyword, in the order of RFC 7644 Table 9, then RFC 9865's.
    pub const ALL: [ScimType; 13] = [
        ScimType::InvalidFilter,
        ScimType::TooMany,
        ScimType::Uniqueness,
        ScimType::Mutability,
        ScimType::InvalidSyntax,
        ScimType::InvalidPath,
        ScimType::NoTarget,
        ScimType::InvalidValue,
        ScimType::InvalidVers,
        ScimType::Sensitive,
        ScimType::InvalidCursor,
        ScimType::ExpiredCursor,
        ScimType::InvalidCount,
    ];

    /// The keyword as it appears on the wire, e.g. `"invalidFilter"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
            ScimType::ExpiredCursor => "expiredCursor",
            ScimType::InvalidCount => "invalidCount",
        }
    }
}

impl AsRef<str> for ScimType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a string is not a `scimType` keyword.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scimType {0:?}")]
pub struct UnknownScimType(pub String);

impl FromStr for ScimType {
    type Err = UnknownScimType;

    /// Parses a keyword; case-insensitive, since some servers capitalise them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScimType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownScimType(s.to_owned()))
    }
}

impl TryFrom<&str> for ScimType {
    type Error = UnknownScimType;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl Serialize for ScimType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ScimType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The detail every 500 response carries: a backend's own message is kept as the
/// error's [`source`](std::error::Error::source), never shown to the client.
const INTERNAL_DETAIL: &str =
    "The service could not complete the request because of an internal error.";

/// A SCIM error: HTTP status, optional `scimType` and `detail` (RFC 7644 §3.12).
///
/// The type is opaque and one pointer wide, so `Result<T, Error>` stays small.
/// Build one with the constructor named after the condition
/// ([`Error::not_found`], [`Error::no_target`], …) and turn it into the wire body
/// with [`ErrorResponse::from`].
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    status: u16,
    scim_type: Option<ScimType>,
    detail: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

macro_rules! scim_type_constructors {
    ($($(#[$doc:meta])* $name:ident => $variant:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(detail: impl Into<String>) -> Self {
                Error::new(400, Some(ScimType::$variant), detail)
            }
        )*
    };
}

impl Error {
    /// An error with any status, `scimType` and detail.
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                status,
                scim_type,
                detail: detail.into(),
                source: None,
            }),
        }
    }

    scim_type_constructors! {
        /// 400 `invalidFilter`: the filter does not parse, or combines an attribute and operator
        /// the server does not support.
        invalid_filter => InvalidFilter;
        /// 400 `tooMany`: the filter would yield more results than the server will compute.
        too_many => TooMany;
        /// 400 `mutability`: a write to a `readOnly` attribute, or a change to an `immutable` one.
        mutability => Mutability;
        /// 400 `invalidSyntax`: the body is not JSON or is not the message it should be.
        invalid_syntax => InvalidSyntax;
        /// 400 `invalidPath`: a PATCH `path` is malformed or names no attribute.
        invalid_path => InvalidPath;
        /// 400 `noTarget`: a PATCH `path` selects nothing to operate on.
        no_target => NoTarget;
        /// 400 `invalidValue`: a value of the wrong type, a missing required value, a bad
        /// canonical value.
        invalid_value => InvalidValue;
        /// 400 `invalidVers`: the SCIM protocol version is not supported.
        invalid_vers => InvalidVers;
        /// 400 `sensitive`: the request URI carries information the server refuses to see there.
        sensitive => Sensitive;
        /// 400 `invalidCursor`: a cursor the server did not issue, or issued for another
        /// query (RFC 9865 §2.1).
        invalid_cursor => InvalidCursor;
        /// 400 `invalidCount`: a count that differs from the first page's (RFC 9865 §2.1).
        invalid_count => InvalidCount;
    }

    /// 409 `uniqueness`: a value that must be unique is already in use (RFC 7644 §3.3).
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Error::new(409, Some(ScimType::Uniqueness), detail)
    }

    /// 400 without a `scimType`, for a bad request no keyword describes.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Error::new(400, None, detail)
    }

    /// 401: the request carries no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Error::new(401, None, detail)
    }

    /// 403: the credentials are valid but not allowed to do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Error::new(403, None, detail)
    }

    /// 404: the resource or endpoint does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Error::new(404, None, detail)
    }

    /// 405: the endpoint does not support this HTTP method.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Error::new(405, None, detail)
    }

    /// 409 without a `scimType`: the request conflicts with the resource's state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Error::new(409, None, detail)
    }

    /// 412: the resource changed since the version in `If-Match` (RFC 7644 §3.14).
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Error::new(412, None, detail)
    }

    /// 413: the request body or a bulk request exceeds the configured limits.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Error::new(413, None, detail)
    }

    /// 415: the request body's media type is neither `application/scim+json` nor `application/json`.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Error::new(415, None, detail)
    }

    /// 501: the feature is switched off in the ServiceProviderConfig.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Error::new(501, None, detail)
    }

    /// 500 with a generic detail; `source` is kept for logs and never shown to the client.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::new(500, None, INTERNAL_DETAIL).with_source(source)
    }

    /// Attaches the underlying cause, returned by [`std::error::Error::source`].
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Replaces the detail, keeping status, `scimType` and source.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = detail.into();
        self
    }

    /// The HTTP status code, e.g. `400`.
    pub fn status(&self) -> u16 {
        self.inner.status
    }

    /// The `scimType` keyword, if RFC 7644 §3.12 defines one for this failure.
    pub fn scim_type(&self) -> Option<ScimType> {
        self.inner.scim_type
    }

    /// The human-readable detail.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("status", &self.inner.status);
        if let Some(t) = self.inner.scim_type {
            d.field("scim_type", &t);
        }
        d.field("detail", &self.inner.detail);
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.status)?;
        if let Some(t) = self.inner.scim_type {
            write!(f, " {t}")?;
        }
        write!(f, ": {}", self.inner.detail)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<&ErrorResponse> for Error {
    fn from(r: &ErrorResponse) -> Self {
        Error::new(r.status, r.scim_type, r.detail.clone().unwrap_or_default())
    }
}

/// The SCIM error body on the wire (RFC 7644 §3.12).
///
/// `status` is written as a JSON string (`"404"`), as the RFC requires, and read
/// from either a string or a number, since some servers send a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// Always `["urn:ietf:params:scim:api:messages:2.0:Error"]` when written.
    #[serde(default = "error_schemas")]
    pub schemas: Vec<String>,
    /// The HTTP status code.
    #[serde(with = "status_as_string")]
    pub status: u16,
    /// The `scimType` keyword, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<ScimType>,
    /// The human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn error_schemas() -> Vec<String> {
    vec![ERROR_SCHEMA.to_owned()]
}

impl From<&Error> for ErrorResponse {
    fn from(e: &Error) -> Self {
        ErrorResponse {
            schemas: error_schemas(),
            status: e.status(),
            scim_type: e.scim_type(),
            detail: Some(e.detail().to_owned()),
        }
    }
}

impl From<Error> for ErrorResponse {
    fn from(e: Error) -> Self {
        ErrorResponse::from(&e)
    }
}

pub(crate) mod status_as_string {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub(crate) fn serialize<S: Serializer>(status: &u16, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(status)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        struct StatusVisitor;
        impl Visitor<'_> for StatusVisitor {
            type Value = u16;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HTTP status code as a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u16, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
                u16::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u16, E> {
                u16::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(StatusVisitor)
    }
}

impl From<serde_json::Error> for Error {
    /// A body that is not JSON, or not the message expected: 400 `invalidSyntax`.
    fn from(e: serde_json::Error) -> Self {
        Error::invalid_syntax(format!("the request body is not valid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_is_small() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn scim_type_round_trips_through_its_string() {
        for t in ScimType::ALL {
            assert_eq!(t.as_str().parse::<ScimType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert!("nope".parse::<ScimType>().is_err());
    }

    #[test]
    fn internal_errors_hide_their_source() {
        let e = Error::internal("connection refused to 10.0.0.3:5432");
        assert_eq!(e.status(), 500);
        assert!(!e.detail().contains("10.0.0.3"));
        assert!(std::error::Error::source(&e).is_some());
    }
}
