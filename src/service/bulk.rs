//! Bulk (RFC 7644 §3.7): many operations in one request, with `bulkId` references.

use std::collections::HashMap;

use serde_json::Value;

use super::request::{Request, Response};
use super::{Service, parse_etags};
use crate::error::{Error, Result};
use crate::message::{BulkMethod, BulkOperationResponse, BulkRequest, BulkResponse};
use crate::schema::urn;
use crate::store::Store;

/// Replaces `bulkId:<id>` strings with the ids created earlier in the request.
fn resolve(value: &mut Value, ids: &HashMap<String, String>) -> std::result::Result<(), String> {
    match value {
        Value::String(s) => {
            if let Some(bulk_id) = s.strip_prefix("bulkId:") {
                let id = ids.get(bulk_id).ok_or_else(|| bulk_id.to_owned())?;
                *s = id.clone();
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| resolve(v, ids)),
        Value::Object(map) => map.values_mut().try_for_each(|v| resolve(v, ids)),
        _ => Ok(()),
    }
}

fn resolve_path(path: &str, ids: &HashMap<String, String>) -> std::result::Result<String, String> {
    let mut out = Vec::new();
    for segment in path.split('/') {
        match segment.strip_prefix("bulkId:") {
            Some(b) => out.push(ids.get(b).cloned().ok_or_else(|| b.to_owned())?),
            None => out.push(segment.to_owned()),
        }
    }
    Ok(out.join("/"))
}

impl<S: Store> Service<S> {
    /// POST `/Bulk`.
    pub(super) async fn bulk(&self, ctx: &S::Context, req: &Request) -> Result<Response> {
        if self.config.bulk_max_operations == 0 {
            return Err(Error::not_implemented("bulk requests are not supported"));
        }
        let body = self.body_json(req, self.config.bulk_max_payload_bytes)?;
        let bulk: BulkRequest = serde_json::from_value(body)
            .map_err(|e| Error::invalid_syntax(format!("the body is not a BulkRequest: {e}")))?;
        if !bulk
            .schemas
            .iter()
            .any(|s| s.eq_ignore_ascii_case(urn::BULK_REQUEST))
        {
            return Err(Error::invalid_syntax(format!(
                "a BulkRequest's schemas must be [\"{}\"]",
                urn::BULK_REQUEST
            )));
        }
        if bulk.operations.len() > self.config.bulk_max_operations {
            return Err(Error::payload_too_large(format!(
                "the bulk request has {} operations, more than the maximum of {}",
                bulk.operations.len(),
                self.config.bulk_max_operations
            )));
        }
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut errors = 0u32;
        let mut results = Vec::new();
        // What the operations' own responses keep for the host's logs.
        let mut causes = Vec::new();
        for op in bulk.operations {
            if bulk.fail_on_errors.is_some_and(|n| errors >= n) {
                break;
            }
            let response = self.bulk_operation(ctx, &op, &ids).await;
            let response = response.unwrap_or_else(|e| Response::error(&e));
            if response.status >= 400 {
                errors += 1;
            }
            if let Some(cause) = &response.cause {
                causes.push(format!(
                    "Operations[{}] ({} {}): {cause}",
                    results.len(),
                    op.method,
                    op.path
                ));
            }
            let location = response.header("Location").map(str::to_owned).or_else(|| {
                // RFC 7644 §3.7.3: successful PUT, PATCH and DELETE name the resource too.
                (response.status < 400 && op.method != BulkMethod::Post)
                    .then(|| resolve_path(&op.path, &ids).ok().map(|p| self.location(&p)))
                    .flatten()
            });
            if op.method == BulkMethod::Post && response.status == 201 {
                if let (Some(bulk_id), Some(id)) = (
                    &op.bulk_id,
                    response
                        .json_body()
                        .and_then(|b| b.get("id").and_then(Value::as_str).map(str::to_owned)),
                ) {
                    ids.insert(bulk_id.clone(), id);
                }
            }
            results.push(BulkOperationResponse {
                location,
                method: op.method,
                bulk_id: op.bulk_id.clone(),
                version: response.header("ETag").map(str::to_owned),
                status: response.status,
                response: (response.status >= 400)
                    .then(|| response.json_body())
                    .flatten(),
            });
        }
        let body = BulkResponse {
            schemas: vec![urn::BULK_RESPONSE.to_owned()],
            operations: results,
        };
        let mut done = Response::json(200, &body);
        done.cause = (!causes.is_empty()).then(|| causes.join("; "));
        Ok(done)
    }

    async fn bulk_operation(
        &self,
        ctx: &S::Context,
        op: &crate::message::BulkOperation,
        ids: &HashMap<String, String>,
    ) -> Result<Response> {
        if op.method == BulkMethod::Post && op.bulk_id.is_none() {
            return Err(Error::invalid_syntax(
                "a bulk POST needs a bulkId (RFC 7644 §3.7)",
            ));
        }
        let unknown = |b: String| {
            Error::conflict(format!(
                "bulkId:{b} names no resource created earlier in this request"
            ))
        };
        let path = resolve_path(&op.path, ids).map_err(unknown)?;
        let mut sub = Request::new(op.method.as_str(), &path);
        if let Some(mut data) = op.data.clone() {
            resolve(&mut data, ids).map_err(unknown)?;
            sub = sub.with_json(&data);
        } else if op.method != BulkMethod::Delete {
            return Err(Error::invalid_syntax(format!(
                "a bulk {} needs data",
                op.method
            )));
        }
        if let Some(version) = &op.version {
            let tags = parse_etags(version);
            if let Some(tag) = tags.first() {
                sub = sub.with_header("If-Match", format!("W/\"{tag}\""));
            }
        }
        // `dispatch` refuses a nested `/Bulk`.
        let segments = super::path_segments(&sub.path);
        Ok(self.dispatch(ctx, &sub, &segments).await)
    }
}
