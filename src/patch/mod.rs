//! The PATCH engine: applies a [`PatchOp`] to any resource, guided by its schema,
//! atomically (RFC 7644 §3.5.2).
//!
//! The engine works on a resource's JSON, so built-in and custom resource types
//! take the same path. It follows RFC 7644 §3.5.2.1–3 for `add`, `remove` and
//! `replace` on every kind of attribute the schema describes, enforces
//! mutability and types from the schema, and keeps at most one `primary` value
//! (RFC 7643 §2.4). Either every operation applies or none does, and the outcome
//! says whether anything actually changed, so a no-op PATCH need not bump
//! `meta.version`.
//!
//! ```
//! use scimkit::patch::{self, PatchOptions};
//! use scimkit::{PatchOp, Registry};
//! use serde_json::json;
//!
//! let registry = Registry::core();
//! let users = registry.resource_type("User").ok_or("no User type")?;
//! let mut user = json!({
//!     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
//!     "id": "2819c223",
//!     "userName": "bjensen",
//!     "active": true
//! });
//! // What Entra ID sends to disable a user.
//! let op: PatchOp = serde_json::from_value(json!({
//!     "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
//!     "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
//! }))?;
//! let outcome = patch::apply(&users, &mut user, &op, &PatchOptions::default())?;
//! assert!(outcome.changed);
//! assert_eq!(user["active"], false);
//!
//! // The same again changes nothing.
//! let outcome = patch::apply(&users, &mut user, &op, &PatchOptions::default())?;
//! assert!(!outcome.changed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What identity providers send
//!
//! [`PatchOptions::default`] (lenient) accepts what Entra ID, Okta and others
//! really send, on top of the RFC. [`PatchOptions::strict`] follows the RFC
//! literally. The differences:
//!
//! | request | lenient (default) | strict |
//! |---|---|---|
//! | path-less value with dotted keys, `{"name.givenName": "Ann"}` | sets `name.givenName` | 400 `invalidPath` |
//! | `add`/`replace` on `emails[type eq "work"].value` when no work email exists | creates `{"type": "work", "value": …}` | 400 `noTarget` |
//! | `remove` on `members` with a `value` list | removes exactly the listed members | 400 `invalidValue` |
//! | `remove` with a value filter that matches nothing | no change | 400 `noTarget` |
//! | empty `Operations`, or no `schemas` (GitHub) | no change / accepted | 400 `invalidSyntax` |
//! | a path naming an attribute the schema does not define | kept as an extra attribute | 400 `invalidPath` |
//!
//! A value path creates a missing value only when its filter is a plain
//! conjunction of `eq` tests (`type eq "work"`, `type eq "work" and primary eq
//! true`): only then does the filter say what the new value is. A filter on the
//! value's identity (`members[value eq "…"]`, `emails[value eq "…"]`) only selects
//! values that exist, so a PATCH never invents a group member. Any other filter
//! that matches nothing is 400 `noTarget` in both settings.
//!
//! In both settings `schemas` is kept by the engine (an extension's URN is added when
//! its first attribute is set and removed with its last), so operations on `schemas`
//! itself change nothing.
//!
//! Values are read through the schema's normalisation in both settings:
//! operation names in any case, `"False"` for a boolean, a bare id string for
//! `manager` or a member.

mod engine;
mod journal;
mod lists;
mod quirks;

use serde_json::Value;

pub use engine::apply;
pub(crate) use engine::validate_message as validate;

use crate::error::{Error, Result};
use crate::filter::FilterOptions;
use crate::message::PatchOp;
use crate::resource::Resource;
use crate::schema::Registry;

/// How a PATCH is interpreted, passed per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchOptions {
    lenient: bool,
    max_operations: usize,
    filter: FilterOptions,
}

impl PatchOptions {
    /// The default maximum number of operations in one PatchOp.
    pub const DEFAULT_MAX_OPERATIONS: usize = 1_000;

    /// What identity providers need: the RFC plus the leniencies in the
    /// [module documentation](self). This is the default.
    pub fn lenient() -> Self {
        PatchOptions {
            lenient: true,
            max_operations: Self::DEFAULT_MAX_OPERATIONS,
            filter: FilterOptions::default(),
        }
    }

    /// The RFC, literally.
    pub fn strict() -> Self {
        PatchOptions {
            lenient: false,
            ..PatchOptions::lenient()
        }
    }

    /// Sets the maximum number of operations in one PatchOp (more is 413).
    pub fn max_operations(mut self, max: usize) -> Self {
        self.max_operations = max;
        self
    }

    /// Sets the limits for parsing paths and their filters.
    pub fn filter_options(mut self, options: FilterOptions) -> Self {
        self.filter = options;
        self
    }

    /// The maximum number of operations in one PatchOp, as set by
    /// [`max_operations`](Self::max_operations).
    pub fn operation_limit(&self) -> usize {
        self.max_operations
    }

    /// Whether the lenient setting is on.
    pub fn is_lenient(&self) -> bool {
        self.lenient
    }
}

impl Default for PatchOptions {
    fn default() -> Self {
        PatchOptions::lenient()
    }
}

/// What a PATCH did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatchOutcome {
    /// Whether the resource differs from before.
    pub changed: bool,
}

/// Applies a PatchOp to a typed resource (a [`User`](crate::User) or
/// [`Group`](crate::Group)) through its JSON.
///
/// `password` is write-only and so is not part of the JSON: afterwards the
/// resource holds a password only if the PATCH set one.
///
/// ```
/// use scimkit::patch::{self, PatchOptions};
/// use scimkit::{Group, PatchOp, PatchOperation, Registry};
/// use serde_json::json;
///
/// let mut group = Group::new("Tour Guides");
/// let op = PatchOp::new(vec![PatchOperation::add(Some("members"), json!("2819c223"))]);
/// patch::apply_to(&Registry::core(), &mut group, &op, &PatchOptions::default())?;
/// assert_eq!(group.members[0].value.as_deref(), Some("2819c223"));
/// # Ok::<(), scimkit::Error>(())
/// ```
///
/// # Errors
/// As [`apply`]; the resource is unchanged on error.
pub fn apply_to<R: Resource>(
    registry: &Registry,
    resource: &mut R,
    patch: &PatchOp,
    options: &PatchOptions,
) -> Result<PatchOutcome> {
    let rt = registry.schema_of::<R>()?;
    let mut json: Value = serde_json::to_value(&*resource).map_err(Error::internal)?;
    let outcome = apply(&rt, &mut json, patch, options)?;
    if outcome.changed {
        *resource =
            serde_json::from_value(json).map_err(|e| Error::invalid_value(e.to_string()))?;
    }
    Ok(outcome)
}
