//! Storage: the trait a host implements, and [`MemoryStore`], the reference
//! implementation.
//!
//! A store keeps resources as JSON [`Record`]s, one table per resource type and
//! per host-defined context (a tenant, for example). It promises three things the
//! service relies on:
//!
//! - **Conditional writes.** `replace` and `delete` take the version the caller
//!   read; if the stored version differs the store answers
//!   [`StoreError::PreconditionFailed`] and writes nothing, so concurrent writers
//!   never overwrite each other silently.
//! - **Uniqueness.** `create` and `replace` receive the [`UniqueValue`]s the schema
//!   asks for (`userName`, case-insensitively); a clash is [`StoreError::Conflict`]
//!   and becomes 409 `uniqueness`.
//! - **Isolation.** Everything is scoped by the context: two tenants never see each
//!   other's data.
//!
//! `list` receives the parsed filter, sort and page so a database can push them
//! down; [`apply_query`] does all three in memory for stores that cannot.
//! Stores that can change a group's members without loading them implement
//! [`Store::update_members`]; the service uses it for member-only PATCHes.

mod memory;
pub(crate) mod query;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use memory::MemoryStore;
pub use query::{apply_query, compare_for_sort};

use crate::events::Event;
use crate::filter::{CompValue, CompareOp, Filter};
use crate::message::{OpKind, PatchOp, SortOrder};
use crate::patch::{self, PatchOptions};
use crate::path::AttrPath;
use crate::path::Path;
use crate::schema::Mutability;
use crate::schema::ResourceSchema;
use crate::schema::normalize::coerce;

/// A stored resource: its id, its version and its JSON.
///
/// The JSON is the resource as the service keeps it: normalised, with `id` and
/// `meta.resourceType`, `meta.created` and `meta.lastModified`; `meta.version`
/// and `meta.location` are derived from [`Record::version`] and the base URL when
/// the resource is served.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The resource's `id`.
    pub id: String,
    /// The version, incremented on every change; served as the weak ETag `W/"<version>"`.
    pub version: u64,
    /// The resource's JSON object.
    pub resource: Value,
}

/// A value the store must keep unique within a context and resource type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UniqueValue {
    /// The attribute's name, e.g. `userName`.
    pub attribute: String,
    /// The value, lower-cased when the attribute is not `caseExact`.
    pub value: String,
}

/// What a store can report besides success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No resource has that id (in this context). Becomes 404.
    #[error("resource {0} not found")]
    NotFound(String),
    /// A unique value is taken. Becomes 409 `uniqueness`.
    #[error("{0}")]
    Conflict(String),
    /// The store refuses the value, for example a member delta that would take a
    /// group past [`MemberDelta::max_members`]. Becomes 400 `invalidValue` with this
    /// message.
    #[error("{0}")]
    Invalid(String),
    /// The stored version is not the one the write expected. The service retries a
    /// PATCH on the fresh version, or answers 412 when the client sent `If-Match`.
    #[error("the resource changed since it was read")]
    PreconditionFailed,
    /// Anything else: the source is kept for logs and the client sees a generic 500.
    #[error("storage backend failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// A backend failure from any error.
    pub fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        StoreError::Backend(e.into())
    }
}

/// The attributes a caller asked for, so a store may skip loading what will not be
/// returned (`excludedAttributes=members` on a large group).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    /// `attributes`: only these (and those returned `always`) are wanted; empty means all.
    pub attributes: Vec<AttrPath>,
    /// `excludedAttributes`: these are not wanted.
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// Everything.
    pub fn all() -> Self {
        Projection::default()
    }

    /// Whether the top-level attribute `name` (for example `members`) is wanted.
    pub fn wants(&self, name: &str) -> bool {
        let named = |paths: &[AttrPath]| {
            paths
                .iter()
                .any(|p| p.name().eq_ignore_ascii_case(name) && p.sub_attr().is_none())
        };
        if named(&self.excluded) {
            return false;
        }
        self.attributes.is_empty()
            || self
                .attributes
                .iter()
                .any(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// The sort a list asks for (RFC 7644 §3.4.2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    /// The attribute to sort by.
    pub by: AttrPath,
    /// Ascending or descending.
    pub order: SortOrder,
}

/// A list query, as parsed and validated by the service.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    /// The resource type's schemas, for evaluating the filter and sorting.
    pub schema: ResourceSchema<'a>,
    /// The filter, checked against the schema.
    pub filter: Option<&'a Filter>,
    /// The sort, if any.
    pub sort: Option<&'a Sort>,
    /// The 1-based index of the first result wanted.
    pub start_index: usize,
    /// The most results wanted (0 asks only for `totalResults`).
    pub count: usize,
    /// A keyset position, for cursor pagination (RFC 9865): when set (only ever
    /// without a `sort`, with `start_index` 1), the page holds only resources whose
    /// `id` sorts after this one, comparing bytes, in that order. `totalResults`
    /// still counts every match. [`apply_query`] honours it; a SQL store turns it into
    /// `id > $after` on its primary key, so the thousandth page costs what the first
    /// does.
    pub after: Option<&'a str>,
    /// Whether the caller needs `total_results`. When false (a cursor page after the
    /// first, which reports the total its listing began with), a store may skip the
    /// count, which over a million rows costs more than the page, and leave it 0.
    pub count_total: bool,
    /// What the caller will return.
    pub projection: &'a Projection,
}

/// One page of a list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// How many resources matched in all.
    pub total_results: usize,
    /// The resources of this page, in order.
    pub records: Vec<Record>,
}

/// A time as `meta.created` and `meta.lastModified` are written: RFC 3339 in UTC,
/// with as many fractional digits as it has (`2024-05-13T04:42:34.120Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One change to a group's members, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Add this member (a normalised `members` value with at least `value`),
    /// unless a member with the same `value` is there; then merge its sub-attributes.
    Add(Value),
    /// Remove the member whose `value` is this id, if there is one.
    Remove(String),
}

/// A member-only change to a group, for stores that apply it without loading every member.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDelta {
    /// The attribute holding the members (`members`).
    pub attribute: String,
    /// Whether member ids compare case-exactly (`members.value`'s `caseExact`).
    pub case_exact: bool,
    /// The changes, applied in order.
    pub changes: Vec<MemberChange>,
    /// The time to write to `meta.lastModified` if anything changes.
    pub modified: DateTime<Utc>,
    /// The most members the group may have afterwards; a store answers
    /// [`StoreError::Invalid`] and changes nothing when the delta would leave more.
    pub max_members: usize,
    /// When not empty, the resource types an added member must exist as when the
    /// delta commits. The service checks before it calls the store; a store that can
    /// check again in the same transaction, holding the member's row so that a
    /// concurrent delete of it either waits or wins, answers [`StoreError::Invalid`]
    /// for a member that is gone, and no group ever lists a deleted resource.
    pub member_types: Vec<String>,
}

/// One membership: a group that lists a member (for deriving `User.groups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group's id.
    pub group: String,
    /// The group's `displayName`, if it has one.
    pub display_name: Option<String>,
    /// The member's id, as the group lists it.
    pub member: String,
}

/// The storage a host implements: one store for every resource type, scoped by a
/// context the host chooses.
///
/// Methods return `Send` futures, so a store works in multi-threaded servers on
/// any executor; `async fn` in an implementation satisfies them. The crate
/// depends on no runtime.
pub trait Store: Send + Sync {
    /// The host's request context: the tenant, the caller, whatever scopes data.
    type Context: Send + Sync;

    /// Stores a new resource (`record.version` is 1).
    ///
    /// `events` are the write's [events](crate::events); a store that keeps events
    /// records them in the same transaction as the write, and only if it commits
    /// (a store that does not may ignore them). The same holds for every write.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a value in `unique` is taken.
    fn create(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        record: Record,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Reads one resource; `projection` says what the caller will return.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is none with that id.
    fn get(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        id: &str,
        projection: &Projection,
    ) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Replaces a resource if its stored version is `expected_version`.
    ///
    /// # Errors
    /// [`StoreError::PreconditionFailed`] on a version mismatch,
    /// [`StoreError::NotFound`], [`StoreError::Conflict`].
    fn replace(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        record: Record,
        expected_version: u64,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Deletes a resource, if its stored version is `expected_version` when one is given.
    /// A store that removes the resource from the groups listing it (in the same
    /// transaction) records, besides `events`, a [`EventKind::MembersRemoved`](crate::events::EventKind::MembersRemoved)
    /// for each such group, made with [`Event::of_members`].
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::PreconditionFailed`].
    fn delete(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        id: &str,
        expected_version: Option<u64>,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lists resources: filter, sort and page as `query` says ([`apply_query`] does it
    /// in memory).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    fn list(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        query: &ListQuery<'_>,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Applies member changes to a group without materialising it, if the store can;
    /// bumps the version and `meta.lastModified` only if something changed, and
    /// returns the version the group is at afterwards.
    /// Returns `Ok(None)` when the store cannot (the default): the service then
    /// reads, patches and replaces the whole group.
    ///
    /// A store that keeps events records, in the same transaction, the events of
    /// what actually changed: [`Event::of_members`] with the ids that joined and
    /// those that left (at `delta.modified`), nothing when nothing changed.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], and [`StoreError::PreconditionFailed`] when
    /// `expected_version` is given and differs.
    fn update_members(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        id: &str,
        delta: &MemberDelta,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        let _ = (ctx, resource_type, id, delta, expected_version);
        std::future::ready(Ok(None))
    }

    /// Whether [`Store::list`] answers `filter`, on resources of `resource_type`,
    /// without evaluating it in this process over resources it does not match: a
    /// database or an index does that work, and a page costs the calling task what
    /// the resources found cost. A store that says so promises that no part of
    /// `filter` is left to memory. The service then serves a look-up by `id` or by
    /// another attribute whose values it has the store keep unique (`userName eq
    /// "bjensen"`, which identity providers send before each create: at most one
    /// resource) as the light work of
    /// [`Service::is_light`](crate::service::Service::is_light). `false` (the
    /// default) for stores that scan, as [`MemoryStore`] does.
    fn filters_itself(&self, resource_type: &str, filter: &Filter) -> bool {
        let _ = (resource_type, filter);
        false
    }

    /// The attribute of `resource_type` this store keeps apart from the rest of the
    /// resource (a member table, say), if any. The service then applies a PATCH that
    /// does not touch it without loading it, and writes the result with
    /// [`Store::replace_except`], so renaming a group of a million members costs
    /// what renaming an empty one does. `None` (the default) for stores that keep
    /// each resource whole.
    fn kept_apart(&self, resource_type: &str) -> Option<&str> {
        let _ = resource_type;
        None
    }

    /// Like [`Store::replace`], for a `record` read without the attribute
    /// [`Store::kept_apart`] names: everything else is replaced, and that
    /// attribute stays as stored. Only called when `kept_apart` is `Some`.
    ///
    /// # Errors
    /// As [`Store::replace`]; [`StoreError::Backend`] from the default, which a
    /// store whose `kept_apart` is `None` never sees.
    fn replace_except(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        record: Record,
        expected_version: u64,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> impl Future<Output = Result<Record, StoreError>> + Send {
        let _ = (ctx, resource_type, record, expected_version, unique, events);
        std::future::ready(Err(StoreError::backend(
            "this store keeps no attribute apart (kept_apart is None)",
        )))
    }

    /// Which of `ids` name resources of `resource_type` in this context, found in one
    /// query if the store can (the service checks that group members exist before it
    /// writes them). Unless `case_exact`, an id names a resource whose id differs only
    /// in case (`members.value` is not caseExact). Returns the ids as given that were
    /// found, or `Ok(None)` when the store cannot answer (the default): the service
    /// then lists with an `id eq` filter, which matches ids exactly.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    fn existing_ids(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        ids: &[&str],
        case_exact: bool,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StoreError>> + Send {
        let _ = (ctx, resource_type, ids, case_exact);
        std::future::ready(Ok(None))
    }

    /// The groups of `resource_type` whose `attribute` lists any of `member_ids`,
    /// found without loading every member, if the store can. Ids may be compared
    /// ignoring case; the service keeps the matches the schema's `caseExact` allows. Returns `Ok(None)` when it cannot (the default): the service then lists
    /// the groups with a `members.value` filter.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    fn memberships(
        &self,
        ctx: &Self::Context,
        resource_type: &str,
        attribute: &str,
        member_ids: &[&str],
    ) -> impl Future<Output = Result<Option<Vec<Membership>>, StoreError>> + Send {
        let _ = (ctx, resource_type, attribute, member_ids);
        std::future::ready(Ok(None))
    }
}

impl MemberDelta {
    /// The member-only change a PatchOp makes, for a store's
    /// [`Store::update_members`]: a PatchOp that only adds members (`add members`)
    /// and removes them by id (`remove members[value eq "…"]`, or Entra ID's
    /// `remove members` with a value list); `None` for anything else, and in strict
    /// mode. Hosts with their own HTTP glue use it as the service does; the delta's
    /// `max_members` is unbounded until the caller sets it.
    ///
    /// ```
    /// use scimkit::store::{MemberChange, MemberDelta};
    /// use scimkit::{PatchOp, Registry, patch::PatchOptions};
    /// use serde_json::json;
    ///
    /// let registry = Registry::core();
    /// let groups = registry.resource_type("Group").ok_or("no Group type")?;
    /// // Okta's membership change.
    /// let op: PatchOp = serde_json::from_value(json!({
    ///     "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    ///     "Operations": [
    ///         {"op": "remove", "path": "members[value eq \"2819c223\"]"},
    ///         {"op": "add", "path": "members", "value": [{"value": "902c246b", "display": "Mandy"}]}
    ///     ]
    /// }))?;
    /// let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    /// let delta = MemberDelta::from_patch(&groups, &op, &PatchOptions::default(), now)
    ///     .ok_or("a member-only change")?;
    /// assert_eq!(delta.changes[0], MemberChange::Remove("2819c223".into()));
    /// assert_eq!(delta.changes.len(), 2);
    ///
    /// // Anything else is not a member delta.
    /// let rename: PatchOp = serde_json::from_value(json!({
    ///     "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    ///     "Operations": [{"op": "replace", "path": "displayName", "value": "Guides"}]
    /// }))?;
    /// assert!(MemberDelta::from_patch(&groups, &rename, &PatchOptions::default(), now).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_patch(
        rt: &ResourceSchema<'_>,
        op: &PatchOp,
        options: &PatchOptions,
        now: DateTime<Utc>,
    ) -> Option<MemberDelta> {
        if !options.is_lenient()
            || op.operations.is_empty()
            || patch::validate(op, options).is_err()
        {
            return None;
        }
        let members = rt.core().attribute("members")?;
        let value_def = members.sub_attribute("value")?;
        if !members.is_multi_valued() || members.mutability() != Mutability::ReadWrite {
            return None;
        }
        let mut changes = Vec::new();
        for o in &op.operations {
            let path = Path::parse(o.path.as_deref()?).ok()?;
            if !eq_ci(path.attr().name(), members.name())
                || path
                    .attr()
                    .schema()
                    .is_some_and(|s| !eq_ci(s, &rt.core().id))
            {
                return None;
            }
            if path.sub_attr().is_some() {
                return None;
            }
            let ids_of = |v: &Value| -> Option<Vec<Value>> {
                match coerce(members, members.name(), v.clone()).ok()? {
                    Some(Value::Array(items)) => Some(items),
                    None => Some(Vec::new()),
                    Some(_) => None,
                }
            };
            match (o.op, path.filter(), &o.value) {
                (OpKind::Add, None, Some(v)) => {
                    for item in ids_of(v)? {
                        item.get("value")?.as_str()?;
                        changes.push(MemberChange::Add(item));
                    }
                }
                (OpKind::Remove, None, Some(v)) => {
                    for item in ids_of(v)? {
                        changes.push(MemberChange::Remove(
                            item.get("value")?.as_str()?.to_owned(),
                        ));
                    }
                }
                (OpKind::Remove, Some(filter), None) => {
                    let parts: Vec<&Filter> = match filter {
                        Filter::Or(parts) => parts.iter().collect(),
                        single => vec![single],
                    };
                    for part in parts {
                        match part {
                            Filter::Compare(p, CompareOp::Eq, CompValue::String(id))
                                if eq_ci(p.name(), "value")
                                    && p.sub_attr().is_none()
                                    && p.schema().is_none() =>
                            {
                                changes.push(MemberChange::Remove(id.clone()));
                            }
                            _ => return None,
                        }
                    }
                }
                _ => return None,
            }
        }
        Some(MemberDelta {
            attribute: members.name().to_owned(),
            case_exact: value_def.is_case_exact(),
            changes,
            modified: now,
            max_members: usize::MAX,
            member_types: Vec::new(),
        })
    }
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
