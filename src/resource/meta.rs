//! `meta`: the resource's metadata (RFC 7643 §3.1).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A resource's metadata, maintained by the service provider (RFC 7643 §3.1).
///
/// Every field is optional on input: clients such as Entra ID send
/// `"meta": {"resourceType": "User"}` on create, which the service ignores since
/// `meta` is read-only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The name of the resource type, e.g. `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// When the resource was added to the service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// When the resource was last changed; equals `created` until the first change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    /// The URI of the resource, equal to the `Location` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The version of the resource as an entity tag, e.g. `W/"3694e05e9dff590"` (RFC 7644 §3.14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}
