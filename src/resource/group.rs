//! The core `Group` resource (RFC 7643 §4.2).

use serde::{Deserialize, Serialize};

use super::{Extensions, Meta};
use crate::schema::urn;

/// A SCIM Group (RFC 7643 §4.2).
///
/// ```
/// use scimkit::{Group, ResourceRef};
///
/// let mut group = Group::new("Tour Guides");
/// group.members.push(ResourceRef::user("2819c223-7f76-453a-919d-413861904646"));
/// let json = serde_json::to_value(&group)?;
/// assert_eq!(json["members"][0]["type"], "User");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The schema URNs the resource uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The service provider's identifier (read-only, always returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's identifier for the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Metadata kept by the service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The human-readable name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The members: users or groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<ResourceRef>,
    /// Every other attribute and extension object, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Group {
    /// A group with the core schema and the given `displayName`.
    pub fn new(display_name: impl Into<String>) -> Self {
        Group {
            schemas: vec![urn::GROUP.to_owned()],
            display_name: Some(display_name.into()),
            ..Group::default()
        }
    }
}

/// A reference to another resource: a group's `members` and a user's `groups`
/// (RFC 7643 §4.1.2, §4.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceRef {
    /// The `id` of the referenced resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The URI of the referenced resource (`$ref` on the wire).
    #[serde(default, rename = "$ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A human-readable name of the referenced resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// `User` or `Group` for members; `direct` or `indirect` for a user's groups.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Sub-attributes the schema does not define, kept as read.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl ResourceRef {
    /// A reference to the user with this `id`, typed `User`.
    pub fn user(id: impl Into<String>) -> Self {
        ResourceRef {
            value: Some(id.into()),
            kind: Some("User".to_owned()),
            ..ResourceRef::default()
        }
    }

    /// A reference to the group with this `id`, typed `Group`.
    pub fn group(id: impl Into<String>) -> Self {
        ResourceRef {
            value: Some(id.into()),
            kind: Some("Group".to_owned()),
            ..ResourceRef::default()
        }
    }
}
