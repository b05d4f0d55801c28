//! Schemas: attribute definitions and their characteristics (RFC 7643 §2, §7), the
//! built-in User, Group and Enterprise User schemas (§8.7.1), the discovery
//! documents (§5, §6) and the [`Registry`] that resolves attribute names for every
//! resource type, built-in or the host's own.
//!
//! Everything that behaves differently per attribute (case-insensitive names,
//! `caseExact` comparison, multi-valued or single, mutability, `returned`) reads it
//! from here, never from hard-coded attribute names. The service names attributes
//! only for the relations RFC 7643 itself defines between resource types:
//! `User.groups` derived from `Group.members`, and `password` for `changePassword`.
//!
//! ```
//! use scimkit::schema::{Registry, Mutability, Returned};
//!
//! let registry = Registry::core();
//! let users = registry.resource_type("User").ok_or("no User type")?;
//! let user_name = users.attribute(None, "USERNAME").ok_or("no userName")?;
//! assert_eq!(user_name.attribute.name(), "userName");
//! assert!(!user_name.attribute.is_case_exact());
//!
//! let password = users.attribute(None, "password").ok_or("no password")?;
//! assert_eq!(password.attribute.mutability(), Mutability::WriteOnly);
//! assert_eq!(password.attribute.returned(), Returned::Never);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attribute;
mod core;
mod discovery;
pub(crate) mod normalize;
pub(crate) mod registry;

use serde::{Deserialize, Serialize};

pub use attribute::{Attribute, AttributeType, Mutability, Returned, Uniqueness};
pub use discovery::{
    AuthenticationScheme, BulkConfig, FilterConfig, PaginationConfig, ResourceType,
    SchemaExtension, ServiceProviderConfig, Supported,
};
pub use registry::{AttrRef, Registry, RegistryError, ResourceSchema, SharedResourceSchema};

use crate::resource::{Extensions, Meta};

/// The schema URNs this crate knows by name.
pub mod urn {
    /// The core User schema (RFC 7643 §4.1).
    pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    /// The core Group schema (RFC 7643 §4.2).
    pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
    /// The Enterprise User extension (RFC 7643 §4.3).
    pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    /// The ServiceProviderConfig schema (RFC 7643 §5).
    pub const SERVICE_PROVIDER_CONFIG: &str =
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
    /// The ResourceType schema (RFC 7643 §6).
    pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
    /// The Schema schema (RFC 7643 §7).
    pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
    /// The ListResponse message (RFC 7644 §3.4.2).
    pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
    /// The SearchRequest message (RFC 7644 §3.4.3).
    pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    /// The PatchOp message (RFC 7644 §3.5.2).
    pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    /// The BulkRequest message (RFC 7644 §3.7).
    pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
    /// The BulkResponse message (RFC 7644 §3.7).
    pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
    /// The Error message (RFC 7644 §3.12).
    pub const ERROR: &str = crate::error::ERROR_SCHEMA;
}

/// A schema: an identifier (a URN) and its attribute definitions (RFC 7643 §7).
///
/// Serialises as the `/Schemas` endpoint returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    /// `["urn:ietf:params:scim:schemas:core:2.0:Schema"]` when served from `/Schemas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The schema URN, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub id: String,
    /// The schema's human-readable name, e.g. `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The schema's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The attribute definitions.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Metadata, when served from `/Schemas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Members the RFC does not define, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Schema {
    /// A schema with the given URN, name and attributes.
    pub fn new(id: impl Into<String>, name: impl Into<String>, attributes: Vec<Attribute>) -> Self {
        Schema {
            schemas: Vec::new(),
            id: id.into(),
            name: Some(name.into()),
            description: None,
            attributes,
            meta: None,
            extensions: Extensions::new(),
        }
    }

    /// Looks up a top-level attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The built-in core User schema, as RFC 7643 §8.7.1 defines it.
    pub fn user() -> &'static Schema {
        &core::builtin().user
    }

    /// The built-in core Group schema, as RFC 7643 §8.7.1 defines it.
    pub fn group() -> &'static Schema {
        &core::builtin().group
    }

    /// The built-in Enterprise User extension schema, as RFC 7643 §8.7.1 defines it.
    pub fn enterprise_user() -> &'static Schema {
        &core::builtin().enterprise_user
    }

    /// The common attributes every resource has (`id`, `externalId`, `meta`,
    /// `schemas`; RFC 7643 §3.1), which the RFC defines in prose rather than in a schema.
    pub fn common_attributes() -> &'static [Attribute] {
        &core::builtin().common
    }
}
