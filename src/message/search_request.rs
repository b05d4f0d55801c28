//! `SearchRequest`: a query sent by POST to `.search` (RFC 7644 §3.4.3).

use serde::{Deserialize, Serialize};

wire_enum! {
    /// The order of sorted results (RFC 7644 §3.4.2.3).
    pub enum SortOrder : "sortOrder" {
        /// Smallest first (the default).
        Ascending => "ascending",
        /// Largest first.
        Descending => "descending",
    }
}

/// A query in a request body (RFC 7644 §3.4.3), with the same parameters as a GET
/// query string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// `["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The attributes to return (and those returned `always`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// The attributes to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_attributes: Vec<String>,
    /// The filter (RFC 7644 §3.4.2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The attribute to sort by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    /// The sort order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
    /// The 1-based index of the first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_index: Option<i64>,
    /// The maximum number of results per page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Cursor pagination (RFC 9865 §3): `""` for the first page, then the previous
    /// page's `nextCursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
