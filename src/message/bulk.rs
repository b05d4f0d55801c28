//! Bulk messages (RFC 7644 §3.7).

use serde::{Deserialize, Serialize};
use serde_json::Value;

wire_enum! {
    /// The HTTP method of a bulk operation (RFC 7644 §3.7).
    pub enum BulkMethod : "bulk method" {
        /// Create a resource.
        Post => "POST",
        /// Replace a resource.
        Put => "PUT",
        /// Modify a resource.
        Patch => "PATCH",
        /// Delete a resource.
        Delete => "DELETE",
    }
}

/// A bulk request: many operations in one HTTP request (RFC 7644 §3.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRequest {
    /// `["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Stop after this many errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_errors: Option<u32>,
    /// The operations (`Operations` on the wire).
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<BulkOperation>,
}

/// One operation of a [`BulkRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    /// The HTTP method.
    pub method: BulkMethod,
    /// A client-chosen id that later operations use as `bulkId:<id>` (required for POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_id: Option<String>,
    /// The expected version, as in `If-Match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The resource's path relative to the base, e.g. `/Users` or `/Groups/abc`.
    pub path: String,
    /// The request body of the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A bulk response (RFC 7644 §3.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkResponse {
    /// `["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// One result per operation performed (`Operations` on the wire).
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<BulkOperationResponse>,
}

/// The result of one bulk operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperationResponse {
    /// The URI of the resource the operation touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The HTTP method of the operation.
    pub method: BulkMethod,
    /// The operation's `bulkId`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_id: Option<String>,
    /// The resource's version after the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The HTTP status, written as a string (e.g. `"201"`).
    #[serde(with = "crate::error::status_as_string")]
    pub status: u16,
    /// The response body, e.g. a SCIM error for a failed operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}
