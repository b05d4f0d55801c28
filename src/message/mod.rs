//! Protocol messages (RFC 7644): [`ListResponse`], [`SearchRequest`], [`PatchOp`]
//! and the bulk messages.

mod bulk;
mod list_response;
mod patch_op;
mod search_request;

pub use bulk::{BulkMethod, BulkOperation, BulkOperationResponse, BulkRequest, BulkResponse};
pub use list_response::ListResponse;
pub use patch_op::{OpKind, PatchOp, PatchOperation};
pub use search_request::{SearchRequest, SortOrder};
