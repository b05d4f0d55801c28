//! `MemoryStore`: a correct, concurrent, in-memory store (std only).

use std::collections::{BTreeMap, HashMap};
use std::future::{Future, ready};
use std::hash::Hash;
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Utc};

use serde_json::{Map, Value};

use crate::events::{Event, EventLog, StoredEvent};

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
/// order; member-only PATCHes are applied in place under one lock. Every write
/// records its [events](crate::events) under the same lock, read through
/// [`EventLog`]; events every consumer has acknowledged are dropped at once, and
/// at most the newest [`MemoryStore::KEPT_EVENTS`] are kept in any case (older ones
/// are dropped even if a consumer has not read them), so the log never grows without
/// bound.
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
/// block_on(store.create(&"tenant-a".to_owned(), "User", record, &[], &[]))?;
/// let found = block_on(store.get(&"tenant-a".to_owned(), "User", "1", &Projection::all()))?;
/// assert_eq!(found.resource["userName"], "ann");
/// assert!(block_on(store.get(&"tenant-b".to_owned(), "User", "1", &Projection::all())).is_err());
/// # Ok::<(), scimkit::store::StoreError>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore<C = ()> {
    tables: RwLock<HashMap<(C, String), Table>>,
    /// Taken while `tables` is held for writing, so events appear in commit order.
    log: Mutex<Log<C>>,
    member_deltas: bool,
}

/// The event log: events in sequence order, and each consumer's acknowledged sequence.
#[derive(Debug)]
struct Log<C> {
    events: std::collections::VecDeque<StoredEvent<C>>,
    last: u64,
    consumers: HashMap<String, u64>,
}

impl<C> Default for Log<C> {
    fn default() -> Self {
        Log {
            events: std::collections::VecDeque::new(),
            last: 0,
            consumers: HashMap::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    records: BTreeMap<String, Record>,
    /// Each claimed unique value and the id that holds it.
    unique: HashMap<UniqueValue, String>,
    /// The unique values each id holds.
    claims: HashMap<String, Vec<UniqueValue>>,
    /// Where each member sits in a group's member list, for member deltas that
    /// cost what they change; built on a group's first delta, kept up to date by
    /// deltas, and rebuilt when a full write changed the list.
    members: HashMap<String, MemberIndex>,
}

/// The position of each member of one group, by member id (folded unless the ids
/// compare case-exactly), valid for one version of the group.
#[derive(Debug)]
struct MemberIndex {
    version: u64,
    attribute: String,
    case_exact: bool,
    positions: HashMap<String, usize>,
}

impl MemberIndex {
    fn key(&self, id: &str) -> String {
        if self.case_exact {
            id.to_owned()
        } else {
            id.to_lowercase()
        }
    }

    fn build(list: &[Value], version: u64, delta: &MemberDelta) -> MemberIndex {
        let mut index = MemberIndex {
            version,
            attribute: delta.attribute.clone(),
            case_exact: delta.case_exact,
            positions: HashMap::with_capacity(list.len()),
        };
        for (i, m) in list.iter().enumerate() {
            if let Some(id) = m.get("value").and_then(Value::as_str) {
                let key = index.key(id);
                index.positions.entry(key).or_insert(i);
            }
        }
        index
    }

    fn fits(&self, version: u64, delta: &MemberDelta) -> bool {
        self.version == version
            && self.attribute == delta.attribute
            && self.case_exact == delta.case_exact
    }
}

impl<C> Default for MemoryStore<C> {
    fn default() -> Self {
        MemoryStore {
            tables: RwLock::new(HashMap::new()),
            log: Mutex::new(Log::default()),
            member_deltas: true,
        }
    }
}

impl<C> MemoryStore<C> {
    /// The most events kept in memory.
    pub const KEPT_EVENTS: usize = 100_000;

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
    /// Runs a write on one table; the events it returns are logged before the
    /// lock is released, and only if it succeeded.
    fn write<T>(
        &self,
        ctx: &C,
        rt: &str,
        f: impl FnOnce(&mut Table) -> Result<(T, Vec<Event>), StoreError>,
    ) -> Result<T, StoreError> {
        let mut tables = self.tables.write().map_err(|_| poisoned())?;
        let table = tables.entry((ctx.clone(), rt.to_owned())).or_default();
        let (out, events) = f(table)?;
        if !events.is_empty() {
            let mut log = self.log.lock().map_err(|_| poisoned())?;
            for event in events {
                log.last += 1;
                let sequence = log.last;
                log.events.push_back(StoredEvent {
                    sequence,
                    tenant: ctx.clone(),
                    event,
                });
            }
            while log.events.len() > Self::KEPT_EVENTS {
                log.events.pop_front();
            }
        }
        Ok(out)
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
        events: &[Event],
    ) -> impl Future<Output = Result<Record, StoreError>> + Send {
        ready(self.write(ctx, resource_type, |table| {
            if table.records.contains_key(&record.id) {
                return Err(StoreError::Conflict(format!(
                    "id {} is already in use",
                    record.id
                )));
            }
            table.claim(&record.id, unique)?;
            // A whole write may change the members: the index is rebuilt when needed.
            table.members.remove(&record.id);
            table.records.insert(record.id.clone(), record.clone());
            Ok((record, events.to_vec()))
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
        events: &[Event],
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
            // A whole write may change the members: the index is rebuilt when needed.
            table.members.remove(&record.id);
            table.records.insert(record.id.clone(), record.clone());
            Ok((record, events.to_vec()))
        }))
    }

    fn delete(
        &self,
        ctx: &C,
        resource_type: &str,
        id: &str,
        expected_version: Option<u64>,
        events: &[Event],
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
            table.members.remove(id);
            table.release(id);
            Ok(((), events.to_vec()))
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
            let key = resource
                .keys()
                .find(|k| k.eq_ignore_ascii_case(&delta.attribute))
                .cloned()
                .unwrap_or_else(|| delta.attribute.clone());
            let mut list = match resource.remove(&key) {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            let mut index = match table.members.remove(id) {
                Some(index) if index.fits(record.version, delta) => index,
                _ => MemberIndex::build(&list, record.version, delta),
            };
            let outcome = apply_member_changes(&mut list, &mut index, delta);
            let (changed, added, removed) = match outcome {
                Ok(changes) => changes,
                Err(e) => {
                    // The list is as it was: the limit is checked before any change.
                    if !list.is_empty() {
                        resource.insert(key, Value::Array(list));
                    }
                    table.members.insert(id.to_owned(), index);
                    return Err(e);
                }
            };
            if !list.is_empty() {
                resource.insert(key, Value::Array(list));
            }
            let mut events = Vec::new();
            if changed {
                record.version += 1;
                events = Event::of_members(
                    resource_type,
                    id,
                    record.version,
                    delta.modified,
                    &delta.attribute,
                    added,
                    removed,
                );
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
            index.version = record.version;
            let version = record.version;
            table.members.insert(id.to_owned(), index);
            Ok((Some(version), events))
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

/// Applies member changes in order through the group's member index; returns
/// whether anything changed, the ids that joined and the ids that left. Each change costs O(1): a removal moves the last member
/// into the freed place (members are a set, RFC 7643 §2.4, so their order carries no
/// meaning). Nothing changes when the result would exceed `delta.max_members`.
fn apply_member_changes(
    list: &mut Vec<Value>,
    index: &mut MemberIndex,
    delta: &MemberDelta,
) -> Result<(bool, Vec<String>, Vec<String>), StoreError> {
    // The size afterwards, counted before anything is touched: whether each id
    // named is a member after the changes so far.
    let mut member_now: HashMap<String, bool> = HashMap::new();
    let mut count = list.len();
    for change in &delta.changes {
        let (id, add) = match change {
            MemberChange::Add(m) => match m.get("value").and_then(Value::as_str) {
                Some(id) => (id, true),
                None => continue,
            },
            MemberChange::Remove(id) => (id.as_str(), false),
        };
        let key = index.key(id);
        let there = member_now
            .get(&key)
            .copied()
            .unwrap_or_else(|| index.positions.contains_key(&key));
        match (there, add) {
            (false, true) => count += 1,
            (true, false) => count -= 1,
            _ => {}
        }
        member_now.insert(key, add);
    }
    if count > delta.max_members {
        return Err(StoreError::Invalid(format!(
            "'{}' would have {count} values, more than the limit of {} (max_members)",
            delta.attribute, delta.max_members
        )));
    }
    // Each member touched, as it was before (None: not a member), to tell at the end
    // whether the group changed: adding and removing the same member changes nothing.
    let mut before: HashMap<String, Option<Value>> = HashMap::new();
    for change in &delta.changes {
        match change {
            MemberChange::Add(member) => {
                let Some(id) = member.get("value").and_then(Value::as_str) else {
                    continue;
                };
                let key = index.key(id);
                let at = index.positions.get(&key).copied();
                before
                    .entry(key.clone())
                    .or_insert_with(|| at.and_then(|i| list.get(i).cloned()));
                match at {
                    Some(i) => {
                        if let (Some(Value::Object(old)), Value::Object(new)) =
                            (list.get_mut(i), member)
                        {
                            old.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                        }
                    }
                    None => {
                        index.positions.insert(key, list.len());
                        list.push(member.clone());
                    }
                }
            }
            MemberChange::Remove(id) => {
                let key = index.key(id);
                let Some(i) = index.positions.remove(&key) else {
                    continue;
                };
                let gone = list.swap_remove(i);
                before.entry(key).or_insert(Some(gone));
                if let Some(moved) = list
                    .get(i)
                    .and_then(|m| m.get("value"))
                    .and_then(Value::as_str)
                {
                    let key = index.key(moved);
                    index.positions.insert(key, i);
                }
            }
        }
    }
    let id_of = |m: &Value| m.get("value").and_then(Value::as_str).map(str::to_owned);
    let mut changed = false;
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for (key, old) in &before {
        let now = index.positions.get(key).and_then(|&i| list.get(i));
        changed |= now != old.as_ref();
        match (old, now) {
            (None, Some(m)) => added.extend(id_of(m)),
            (Some(m), None) => removed.extend(id_of(m)),
            _ => {}
        }
    }
    // In request order, for a reader.
    let order = |id: &String| {
        delta.changes.iter().position(|c| match c {
            MemberChange::Add(m) => id_of(m).as_deref() == Some(id.as_str()),
            MemberChange::Remove(r) => r == id,
        })
    };
    added.sort_by_key(order);
    removed.sort_by_key(order);
    Ok((changed, added, removed))
}

impl<C> MemoryStore<C> {
    /// Forgets `consumer` and its cursor; returns whether it was known. Events only
    /// it had not acknowledged are then dropped as the others acknowledge them.
    pub fn forget_consumer(&self, consumer: &str) -> bool {
        self.log
            .lock()
            .map(|mut log| log.consumers.remove(consumer).is_some())
            .unwrap_or(false)
    }
}

impl<C: Clone + Send + Sync> EventLog for MemoryStore<C> {
    type Tenant = C;

    fn read_events(
        &self,
        consumer: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent<C>>, StoreError>> + Send {
        ready((|| {
            let mut log = self.log.lock().map_err(|_| poisoned())?;
            let after = *log.consumers.entry(consumer.to_owned()).or_insert(0);
            // Sequences are consecutive from the first event kept.
            let first = log.events.front().map_or(0, |e| e.sequence);
            let skip = usize::try_from((after + 1).saturating_sub(first)).unwrap_or(usize::MAX);
            Ok(log.events.iter().skip(skip).take(limit).cloned().collect())
        })())
    }

    fn acknowledge_events(
        &self,
        consumer: &str,
        sequence: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready((|| {
            let mut log = self.log.lock().map_err(|_| poisoned())?;
            let at = log.consumers.entry(consumer.to_owned()).or_insert(0);
            *at = (*at).max(sequence);
            // What every consumer has acknowledged is of no further use in memory.
            let acknowledged = log.consumers.values().copied().min().unwrap_or(0);
            while log
                .events
                .front()
                .is_some_and(|e| e.sequence <= acknowledged)
            {
                log.events.pop_front();
            }
            Ok(())
        })())
    }

    fn prune_events(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ready((|| {
            let mut log = self.log.lock().map_err(|_| poisoned())?;
            let acknowledged = log.consumers.values().copied().min().unwrap_or(u64::MAX);
            let mut pruned = 0;
            while log
                .events
                .front()
                .is_some_and(|e| e.sequence <= acknowledged && e.event.time < before)
            {
                log.events.pop_front();
                pruned += 1;
            }
            Ok(pruned)
        })())
    }
}
