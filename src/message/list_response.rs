//! `ListResponse` (RFC 7644 §3.4.2).

use serde::{Deserialize, Serialize};

use crate::schema::urn;

/// A page of query results (RFC 7644 §3.4.2).
///
/// ```
/// use scimkit::{ListResponse, User};
///
/// let page = ListResponse::new(vec![User::new("bjensen")], 1, 1);
/// let json = serde_json::to_value(&page)?;
/// assert_eq!(json["totalResults"], 1);
/// assert_eq!(json["Resources"][0]["userName"], "bjensen");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    /// `["urn:ietf:params:scim:api:messages:2.0:ListResponse"]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The number of results the query matched, across all pages.
    pub total_results: u64,
    /// The number of resources on this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_per_page: Option<u64>,
    /// The 1-based index of this page's first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    /// Where the next page starts, in cursor pagination (RFC 9865 §2): absent on
    /// the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The resources on this page (`Resources` on the wire).
    #[serde(rename = "Resources", alias = "resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

impl<T> ListResponse<T> {
    /// A page of `resources` out of `total_results`, starting at the 1-based `start_index`.
    pub fn new(resources: Vec<T>, total_results: u64, start_index: u64) -> Self {
        ListResponse {
            schemas: vec![urn::LIST_RESPONSE.to_owned()],
            total_results,
            items_per_page: Some(resources.len() as u64),
            start_index: Some(start_index),
            next_cursor: None,
            resources,
        }
    }
}
