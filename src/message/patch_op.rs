//! `PatchOp`: a PATCH request body (RFC 7644 §3.5.2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::urn;

wire_enum! {
    /// A PATCH operation's `op` (RFC 7644 §3.5.2). Read case-insensitively, since
    /// Entra ID sends `"Replace"`; written in lower case.
    pub enum OpKind : "PATCH op" {
        /// Add a value (§3.5.2.1).
        Add => "add",
        /// Remove a value (§3.5.2.2).
        Remove => "remove",
        /// Replace a value (§3.5.2.3).
        Replace => "replace",
    }
}

/// A PATCH request body: a list of operations applied in order, all or none
/// (RFC 7644 §3.5.2).
///
/// ```
/// use scimkit::{OpKind, PatchOp};
///
/// let body = r#"{
///     "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
///     "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
/// }"#;
/// let patch: PatchOp = serde_json::from_str(body)?;
/// assert_eq!(patch.operations[0].op, OpKind::Replace);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatchOp {
    /// `["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`; GitHub leaves it out.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The operations (`Operations` on the wire).
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOperation>,
}

impl PatchOp {
    /// A PatchOp with the given operations.
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        PatchOp {
            schemas: vec![urn::PATCH_OP.to_owned()],
            operations,
        }
    }
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOperation {
    /// `add`, `remove` or `replace`.
    #[serde(alias = "Op", alias = "OP")]
    pub op: OpKind,
    /// The attribute path (RFC 7644 §3.5.2 `PATH`); none means the value holds
    /// the attributes to change.
    #[serde(default, alias = "Path", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value to add or replace with, or the values to remove. An explicit
    /// `null` is kept as `Some(Value::Null)`: replacing with null unassigns
    /// (RFC 7643 §2.5).
    #[serde(
        default,
        alias = "Value",
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
}

impl PatchOperation {
    /// An `add` operation.
    pub fn add(path: Option<&str>, value: Value) -> Self {
        PatchOperation {
            op: OpKind::Add,
            path: path.map(str::to_owned),
            value: Some(value),
        }
    }

    /// A `replace` operation.
    pub fn replace(path: Option<&str>, value: Value) -> Self {
        PatchOperation {
            op: OpKind::Replace,
            path: path.map(str::to_owned),
            value: Some(value),
        }
    }

    /// A `remove` operation.
    pub fn remove(path: &str) -> Self {
        PatchOperation {
            op: OpKind::Remove,
            path: Some(path.to_owned()),
            value: None,
        }
    }
}

/// A member that is there, `null` included (a plain `Option` reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}
