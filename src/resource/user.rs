//! The core `User` resource (RFC 7643 §4.1).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{EnterpriseUser, Extensions, Meta, ResourceRef};
use crate::schema::urn;

/// A SCIM User (RFC 7643 §4.1) with every core attribute, the Enterprise User
/// extension (§4.3), and whatever else the document carries in [`User::extensions`].
///
/// Serde reads and writes the RFC's JSON as it is. To read what identity providers
/// send (attribute names in any case, `"active": "True"`, a bare-string
/// `manager`), go through [`Registry::decode`](crate::schema::Registry::decode),
/// which normalises by the schema first.
///
/// ```
/// use scimkit::User;
///
/// let user: User = serde_json::from_str(r#"{
///     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
///     "id": "2819c223-7f76-453a-919d-413861904646",
///     "userName": "bjensen@example.com",
///     "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}]
/// }"#)?;
/// assert_eq!(user.user_name.as_deref(), Some("bjensen@example.com"));
/// assert_eq!(user.primary_email(), Some("bjensen@example.com"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The schema URNs the resource uses (RFC 7643 §3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The service provider's identifier (read-only, always returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's identifier for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Metadata kept by the service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The unique identifier the user signs in with (required, unique ignoring case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The components of the user's real name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// The name to display to end users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The casual way to address the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    /// A URI of the user's online profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_url: Option<String>,
    /// The user's title, e.g. "Vice President".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The relationship to the organisation, e.g. "Employee".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// The preferred written or spoken language, e.g. `en-US` (RFC 7231 §5.3.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    /// The default location for localisation, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The time zone in IANA form, e.g. `America/Los_Angeles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The administrative status: `false` means deactivated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The clear-text password: write-only, so it is read from input and never written.
    #[serde(default, skip_serializing)]
    pub password: Option<Password>,
    /// Email addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<MultiValue>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<MultiValue>,
    /// Instant-messaging addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ims: Vec<MultiValue>,
    /// URLs of photos.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<MultiValue>,
    /// Physical mailing addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// The groups the user belongs to: read-only, derived from group memberships.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ResourceRef>,
    /// Entitlements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<MultiValue>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<MultiValue>,
    /// DER-encoded X.509 certificates, base64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x509_certificates: Vec<MultiValue>,
    /// The Enterprise User extension (RFC 7643 §4.3).
    #[serde(
        default,
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise: Option<EnterpriseUser>,
    /// Every other attribute and extension object, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl User {
    /// A user with the core schema and the given `userName`.
    pub fn new(user_name: impl Into<String>) -> Self {
        User {
            schemas: vec![urn::USER.to_owned()],
            user_name: Some(user_name.into()),
            ..User::default()
        }
    }

    /// The primary email's value, or the first email's if none is primary.
    pub fn primary_email(&self) -> Option<&str> {
        MultiValue::primary_of(&self.emails).and_then(|e| e.value.as_deref())
    }
}

/// The components of a user's name (RFC 7643 §4.1.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Name {
    /// The full name, formatted for display, e.g. "Ms. Barbara J Jensen, III".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// The family (last) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// The given (first) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// The middle name(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// The honorific prefix, e.g. "Ms.".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_prefix: Option<String>,
    /// The honorific suffix, e.g. "III".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_suffix: Option<String>,
    /// Sub-attributes the schema does not define, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One value of a multi-valued attribute with the standard sub-attributes
/// `value`, `display`, `type` and `primary` (RFC 7643 §2.4): emails, phone
/// numbers, ims, photos, entitlements, roles and X.509 certificates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiValue {
    /// The value itself, e.g. an email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A human-readable name for the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// The label (`type` on the wire), e.g. `work` or `home`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether this is the preferred value; at most one value is primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Sub-attributes the schema does not define, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl MultiValue {
    /// A value with the given label, e.g. `MultiValue::typed("work", "ann@example.com")`.
    pub fn typed(kind: impl Into<String>, value: impl Into<String>) -> Self {
        MultiValue {
            value: Some(value.into()),
            kind: Some(kind.into()),
            ..MultiValue::default()
        }
    }

    /// The value marked primary, or else the first.
    pub fn primary_of(values: &[MultiValue]) -> Option<&MultiValue> {
        values
            .iter()
            .find(|v| v.primary == Some(true))
            .or_else(|| values.first())
    }
}

/// A physical mailing address (RFC 7643 §4.1.2, "addresses").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// The full address, formatted for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Street, house number, P.O. box, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    /// City or locality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zip or postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country, as an ISO 3166-1 alpha-2 code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The label (`type` on the wire), e.g. `work` or `home`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether this is the preferred address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Sub-attributes the schema does not define, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A clear-text password: `Debug` prints `Password([redacted])`, and serialising a
/// [`User`] never writes it (the attribute is `returned: never`, RFC 7643 §4.1.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a clear-text password.
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    /// The clear-text password, for hashing or forwarding.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}
