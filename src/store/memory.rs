//! `MemoryStore`: a correct, concurrent, in-memory store (std only).

use std::collections::{BTreeMap, HashMap};
use std::future::{Future, ready};
use std::hash::Hash;
use std::sync::RwLock;

use serde_json::{Map, Value};

use super::{
    ListQuery, MemberChange, MemberDelta, Membership, Page, Projection, Record, Store, StoreError,
    UniqueValue, apply_query,
};

/// An in-memory [`Store`]: the default for tests and prototypes, and the model a
/// host copies.
///
/// The context is the tenant key (any `Hash + Eq + Clone` value: `()` for one
/// tenant, a `String`, a host struct): tenants never see each other's data.
/// Unique values are enforced per tenant and resource type; records list in `id`
/// order; member-only PATCHes are applied in place under one lock.
///
/// ```
/// use scimkit::store::{MemoryStore, Store, Record, Projection};
/// use serde_json::json;
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
///
/// let store: MemoryStore<String> = MemoryStore::new();
/// let record = Record { id: "1".into(), version: 1, resource: json!({"id": "1", "userName": "ann"}) };
/// block_on(store.create(&"tenant-a".to_owned(), "User", record, &[]))?;
/// let found = block_on(store.get(&"tenant-a".to_owned(), "User", "1", &Projection::all()))?;
/// assert_eq!(found.resource["userName"], "ann");
/// assert!(block_on(store.get(&"tenant-b".to_owned(), "User", "1", &Projection::all())).is_err());
/// # Ok::<(), scimkit::store::StoreError>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore<C = ()> {
    tables: RwLock<HashMap<(C, String), Table>>,
    member_deltas: bool,
}

#[derive(Debug, Default)]
struct Table {
    records: BTreeMap<String, Record>,
    /// Each claimed unique value and the id that holds it.
    unique: HashMap<UniqueValue, String>,
    /// The unique values each id holds.
    claims: HashMap<String, Vec<UniqueValue>>,
}

impl<C> Default for MemoryStore<C> {
    fn default() -> Self {
        MemoryStore {
            tables: RwLock::new(HashMap::new()),
            member_deltas: true,
        }
    }
}

impl<C> MemoryStore<C> {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store that declines [`Store::update_members`], so the service takes its
    /// general read–patch–replace path (useful to test that path).
    pub fn without_member_deltas() -> Self {
        MemoryStore {
            member_deltas: false,
            ..MemoryStore::default()
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::backend("the memory store's lock was poisoned by a panic")
}

impl<C: Hash + Eq + Clone + Send + Sync> MemoryStore<C> {
    fn write<T>(
        &self,
        ctx: &C,
        rt: &str,
        f: impl FnOnce(&mut Table) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tables = self.tables.write().map_err(|_| poisoned())?;
        let table = tables.entry((ctx.clone(), rt.to_owned())).or_default();
        f(table)
    }

    fn read<T>(
        &self,
        ctx: &C,
        rt: &str,
        f: impl FnOnce(Option<&Table>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tables = self.tables.read().map_err(|_| poisoned())?;
        f(tables.get(&(ctx.clone(), rt.to_owned())))
    }
}

impl Table {
    /// Claims `unique` for `id`, releasing what `id` held before.
    fn claim(&mut self, id: &str, unique: &[UniqueValue]) -> Result<(), StoreError> {
        for u in unique {
            if let Some(owner) = self.unique.get(u) {
                if owner != id {
                    return Err(StoreError::Conflict(format!(
                        "{} {:?} is already in use",
                        u.attribute, u.value
                    )));
                }
            }
        }
        self.release(id);
        for u in unique {
            self.unique.insert(u.clone(), id.to_owned());
        }
        self.claims.insert(id.to_owned(), unique.to_vec());
        Ok(())
    }

    /// Releases the unique values `id` holds.
    fn release(&mut self, id: &str) {
        for u in self.claims.remove(id).unwrap_or_default() {
            if self.unique.get(&u).is_some_and(|owner| owner == id) {
                self.unique.remove(&u);
            }
        }
    }
}

/// A copy of the record with only the top-level attributes the projection wants.
fn projected(record: &Record, projection: &Projection) -> Record {
    let resource = match &record.resource {
        Value::Object(map) if projection != &Projection::all() => Value::Object(
            map.iter()
                .filter(|(k, _)| is_core_member(k) || projection.wants(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    Record {
        id: record.id.clone(),
        version: record.version,
        resource,
    }
}

/// Members a store always returns: the service needs them whatever is projected.
fn is_core_member(key: &str) -> bool {
    ["id", "schemas", "meta"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
        || key.contains(':')
}

impl<C: Hash + Eq + Clone + Send + Sync> Store for MemoryStore<C> {
    type Context = C;

    fn create(
        &self,
        ctx: &C,
        resource_type: &str,
        record: Record,
        unique: &[UniqueValue],
    ) -> impl Future<Output = Result<Record, StoreError>> + Send {
        ready(self.write(ctx, resource_type, |table| {
            if table.records.contains_key(&record.id) {
                return Err(StoreError::Conflict(format!(
                    "id {} is already in use",
                    record.id
                )));
            }
            table.claim(&record.id, unique)?;
            table.records.insert(record.id.clone(), record.clone());
            Ok(record)
        }))
    }

    fn get(
        &self,
        ctx: &C,
        resource_type: &str,
        id: &str,
        projection: &Projection,
    ) -> impl Future<Output = Result<Record, StoreError>> + Send {
        ready(self.read(ctx, resource_type, |table| {
            table
                .and_then(|t| t.records.get(id))
                .map(|r| projected(r, projection))
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))
        }))
    }

    fn replace(
        &self,
        ctx: &C,
        resource_type: &str,
        record: Record,
        expected_version: u64,
        unique: &[UniqueValue],
    ) -> impl Future<Output = Result<Record, StoreError>> + Send {
        ready(self.write(ctx, resource_type, |table| {
            let current = table
                .records
                .get(&record.id)
                .ok_or_else(|| StoreError::NotFound(record.id.clone()))?;
            if current.version != expected_version {
                return Err(StoreError::PreconditionFailed);
            }
            table.claim(&record.id, unique)?;
            table.records.insert(record.id.clone(), record.clone());
            Ok(record)
        }))
    }

    fn delete(
        &self,
        ctx: &C,
        resource_type: &str,
        id: &str,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.write(ctx, resource_type, |table| {
            let current = table
                .records
                .get(id)
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            if expected_version.is_some_and(|v| v != current.version) {
                return Err(StoreError::PreconditionFailed);
            }
            table.records.remove(id);
            table.release(id);
            Ok(())
        }))
    }

    fn list(
        &self,
        ctx: &C,
        resource_type: &str,
        query: &ListQuery<'_>,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send {
        ready(self.read(ctx, resource_type, |table| {
            let Some(table) = table else {
                return Ok(Page::default());
            };
            let mut page = apply_query(table.records.values(), query);
            if query.projection != &Projection::all() {
                for r in &mut page.records {
                    if let Value::Object(map) = &mut r.resource {
                        map.retain(|k, _| is_core_member(k) || query.projection.wants(k));
                    }
                }
            }
            Ok(page)
        }))
    }

    fn update_members(
        &self,
        ctx: &C,
        resource_type: &str,
        id: &str,
        delta: &MemberDelta,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        if !self.member_deltas {
            return ready(Ok(None));
        }
        ready(self.write(ctx, resource_type, |table| {
            let record = table
                .records
                .get_mut(id)
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            if expected_version.is_some_and(|v| v != record.version) {
                return Err(StoreError::PreconditionFailed);
            }
            let Value::Object(resource) = &mut record.resource else {
                return Err(StoreError::backend("stored resource is not an object"));
            };
            // Only a delta that could pass the limit pays for a copy to restore.
            let count = |r: &Map<String, Value>| {
                r.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&delta.attribute))
                    .and_then(|(_, v)| v.as_array())
                    .map_or(0, Vec::len)
            };
            let adds = delta
                .changes
                .iter()
                .filter(|c| matches!(c, MemberChange::Add(_)))
                .count();
            let before = (count(resource) + adds > delta.max_members).then(|| resource.clone());
            let changed = apply_member_changes(resource, delta);
            if let Some(before) = before {
                let after = count(resource);
                if after > delta.max_members {
                    *resource = before;
                    return Err(StoreError::Invalid(format!(
                        "'{}' would have {after} values, more than the limit of {} (max_members)",
                        delta.attribute, delta.max_members
                    )));
                }
            }
            if changed {
                record.version += 1;
                let meta = resource
                    .entry("meta")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(meta) = meta {
                    meta.insert(
                        "lastModified".to_owned(),
                        Value::String(super::timestamp(delta.modified)),
                    );
                }
            }
            Ok(Some(record.version))
        }))
    }

    fn existing_ids(
        &self,
        ctx: &C,
        resource_type: &str,
        ids: &[&str],
        case_exact: bool,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StoreError>> + Send {
        ready(self.read(ctx, resource_type, |table| {
            let Some(table) = table else {
                return Ok(Some(Vec::new()));
            };
            let (mut found, rest): (Vec<&str>, Vec<&str>) =
                ids.iter().partition(|id| table.records.contains_key(**id));
            if !case_exact && !rest.is_empty() {
                // Ids that differ only in case: one pass over the table's ids.
                let folded: std::collections::HashSet<String> =
                    table.records.keys().map(|k| k.to_lowercase()).collect();
                found.extend(
                    rest.into_iter()
                        .filter(|id| folded.contains(&id.to_lowercase())),
                );
            }
            Ok(Some(found.into_iter().map(str::to_owned).collect()))
        }))
    }

    fn memberships(
        &self,
        ctx: &C,
        resource_type: &str,
        attribute: &str,
        member_ids: &[&str],
    ) -> impl Future<Output = Result<Option<Vec<Membership>>, StoreError>> + Send {
        let wanted: std::collections::HashSet<String> =
            member_ids.iter().map(|id| id.to_lowercase()).collect();
        ready(self.read(ctx, resource_type, |table| {
            let mut out = Vec::new();
            for record in table.into_iter().flat_map(|t| t.records.values()) {
                let Some(obj) = record.resource.as_object() else {
                    continue;
                };
                let members = obj
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
                    .and_then(|(_, v)| v.as_array());
                for member in members.into_iter().flatten() {
                    let Some(id) = member.get("value").and_then(Value::as_str) else {
                        continue;
                    };
                    if wanted.contains(&id.to_lowercase()) {
                        out.push(Membership {
                            group: record.id.clone(),
                            display_name: obj
                                .get("displayName")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            member: id.to_owned(),
                        });
                    }
                }
            }
            Ok(Some(out))
        }))
    }
}

/// Applies member changes in order; returns whether anything changed.
pub(crate) fn apply_member_changes(resource: &mut Map<String, Value>, delta: &MemberDelta) -> bool {
    let key = resource
        .keys()
        .find(|k| k.eq_ignore_ascii_case(&delta.attribute))
        .cloned()
        .unwrap_or_else(|| delta.attribute.clone());
    let norm = |s: &str| {
        if delta.case_exact {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    let id_of = |v: &Value| v.get("value").and_then(Value::as_str).map(norm);
    let mut members = match resource.remove(&key) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    let mut index: HashMap<String, usize> = members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| id_of(m).map(|id| (id, i)))
        .collect();
    let mut changed = false;
    for change in &delta.changes {
        match change {
            MemberChange::Add(member) => {
                let Some(id) = id_of(member) else { continue };
                match index.get(&id) {
                    Some(&i) => {
                        if let (Some(Value::Object(old)), Value::Object(new)) =
                            (members.get_mut(i), member)
                        {
                            for (k, v) in new {
                                if old.get(k) != Some(v) {
                                    old.insert(k.clone(), v.clone());
                                    changed = true;
                                }
                            }
                        }
                    }
                    None => {
                        index.insert(id, members.len());
                        members.push(member.clone());
                        changed = true;
                    }
                }
            }
            MemberChange::Remove(id) => {
                // Removed members leave a null behind until the end, so indices hold.
                if let Some(i) = index.remove(&norm(id)) {
                    members[i] = Value::Null;
                    changed = true;
                }
            }
        }
    }
    members.retain(|m| !m.is_null());
    if !members.is_empty() {
        resource.insert(key, Value::Array(members));
    }
    changed
}
