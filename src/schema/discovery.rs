//! Discovery documents: `ServiceProviderConfig` (RFC 7643 §5) and `ResourceType` (§6).

use serde::{Deserialize, Serialize};

use crate::resource::{Extensions, Meta};

/// What the service provider supports (RFC 7643 §5), served at `/ServiceProviderConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProviderConfig {
    /// `["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// A URL of human-readable help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_uri: Option<String>,
    /// PATCH support.
    pub patch: Supported,
    /// Bulk support and limits.
    pub bulk: BulkConfig,
    /// Filter support and the maximum number of resources a list returns.
    pub filter: FilterConfig,
    /// Whether `password` can be changed.
    pub change_password: Supported,
    /// Sorting support.
    pub sort: Supported,
    /// ETag support.
    pub etag: Supported,
    /// Which pagination methods the service offers (RFC 9865 §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PaginationConfig>,
    /// The authentication schemes the service accepts.
    #[serde(default)]
    pub authentication_schemes: Vec<AuthenticationScheme>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Members the RFC does not define, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A feature that is either supported or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supported {
    /// Whether the feature is supported.
    pub supported: bool,
}

/// Bulk support and its limits (RFC 7643 §5, "bulk").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkConfig {
    /// Whether bulk requests are supported.
    pub supported: bool,
    /// The maximum number of operations in one bulk request.
    pub max_operations: u64,
    /// The maximum size of a bulk request body, in bytes.
    pub max_payload_size: u64,
}

/// The pagination methods a service offers (RFC 9865 §4, "pagination").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaginationConfig {
    /// Whether cursor pagination (`cursor`, `nextCursor`) is offered.
    pub cursor: bool,
    /// Whether index pagination (`startIndex`) is offered.
    pub index: bool,
    /// What a list without `cursor` or `startIndex` gets: `"cursor"` or `"index"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pagination_method: Option<String>,
    /// The page size when a list gives no `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_page_size: Option<u64>,
    /// The most resources one page returns, whatever `count` asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<u64>,
    /// The least number of seconds a cursor stays valid; absent when cursors do not
    /// expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_timeout: Option<u64>,
}

/// Filter support and its limit (RFC 7643 §5, "filter").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterConfig {
    /// Whether filters are supported.
    pub supported: bool,
    /// The maximum number of resources one response returns.
    pub max_results: u64,
}

/// One accepted authentication scheme (RFC 7643 §5, "authenticationSchemes").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationScheme {
    /// The scheme's keyword (`type` on the wire): `oauth`, `oauth2`,
    /// `oauthbearertoken`, `httpbasic` or `httpdigest`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The scheme's name, e.g. "OAuth Bearer Token".
    pub name: String,
    /// A description of the scheme.
    pub description: String,
    /// The URL of the scheme's specification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_uri: Option<String>,
    /// A URL of human-readable help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_uri: Option<String>,
    /// Whether this is the preferred scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

impl AuthenticationScheme {
    /// The OAuth 2.0 bearer token scheme (RFC 6750), as `Authorization: Bearer <token>`.
    pub fn bearer_token() -> Self {
        AuthenticationScheme {
            kind: "oauthbearertoken".to_owned(),
            name: "OAuth Bearer Token".to_owned(),
            description: "Authentication scheme using the OAuth Bearer Token Standard".to_owned(),
            spec_uri: Some("https://www.rfc-editor.org/info/rfc6750".to_owned()),
            documentation_uri: None,
            primary: Some(true),
        }
    }
}

/// A resource type: its endpoint and schemas (RFC 7643 §6), served at `/ResourceTypes`.
///
/// ```
/// use scimkit::schema::ResourceType;
///
/// let badges = ResourceType::new("Badge", "/Badges", "urn:example:params:scim:schemas:core:2.0:Badge");
/// assert_eq!(badges.id.as_deref(), Some("Badge"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceType {
    /// `["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The resource type's identifier, usually its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name, e.g. `User`; used as `meta.resourceType`.
    pub name: String,
    /// The endpoint relative to the base URL, e.g. `/Users`.
    pub endpoint: String,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The core schema's URN.
    pub schema: String,
    /// The extension schemas the type allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_extensions: Vec<SchemaExtension>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Members the RFC does not define, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl ResourceType {
    /// A resource type with the given name, endpoint and core schema.
    pub fn new(
        name: impl Into<String>,
        endpoint: impl Into<String>,
        schema: impl Into<String>,
    ) -> Self {
        let name = name.into();
        ResourceType {
            schemas: vec![crate::schema::urn::RESOURCE_TYPE.to_owned()],
            id: Some(name.clone()),
            name,
            endpoint: endpoint.into(),
            description: None,
            schema: schema.into(),
            schema_extensions: Vec::new(),
            meta: None,
            extensions: Extensions::new(),
        }
    }

    /// Adds an extension schema; `required` says whether every resource must carry it.
    pub fn with_extension(mut self, schema: impl Into<String>, required: bool) -> Self {
        self.schema_extensions.push(SchemaExtension {
            schema: schema.into(),
            required,
        });
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// An extension schema a resource type allows (RFC 7643 §6, "schemaExtensions").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaExtension {
    /// The extension schema's URN.
    pub schema: String,
    /// Whether every resource of the type must carry the extension.
    pub required: bool,
}
