//! Provisioning events: what a write actually changed, typed, so a host can react
//! to what identity providers do (give a new user a default role, end the sessions
//! of a deactivated one, turn memberships into permissions).
//!
//! The [service](crate::service) derives events from the resource as it was and
//! as it is after a write, never from what the request asked: Okta's
//! `replace active false`, a path-less `{"active": false}`, Entra ID's string
//! `"False"` and a PUT with `"active": false` are all one
//! [`EventKind::Deactivated`] (a user without `active` counts as active). A write that changes nothing, a failed request, a
//! 409 and a 412 produce no event; a write the service retried after a race
//! produces the events of the attempt that committed, once.
//!
//! The service hands a write's events to the [`Store`](crate::store::Store)
//! together with the write (the `events` argument of `create`, `replace`,
//! `replace_except` and `delete`); stores that change members in place
//! ([`Store::update_members`](crate::store::Store::update_members)) or remove a
//! deleted member from its groups make theirs with [`Event::of_members`]. A store that
//! keeps events writes them in the same transaction as the change (a transactional
//! outbox), so an event exists if and only if its change committed, and offers
//! them to consumers through [`EventLog`]: [`MemoryStore`](crate::store::MemoryStore)
//! in process, `scimkit-sql`'s `SqlStore` in its database.
//!
//! Events are notices: they name the resource, the version the change produced and
//! what changed, not the resource's values (read the resource for those). Their
//! JSON form is stable:
//!
//! ```
//! use scimkit::events::{Event, EventKind};
//!
//! let time = "2026-05-13T04:42:34.120Z".parse()?;
//! let event = Event::new(EventKind::Deactivated, "User", "2819c223", 4, time);
//! let json = serde_json::to_value(&event)?;
//! assert_eq!(json["type"], "deactivated");
//! assert_eq!(json["resourceType"], "User");
//! assert_eq!(json["resourceId"], "2819c223");
//! assert_eq!(json["version"], 4);
//! assert_eq!(json["time"], "2026-05-13T04:42:34.120Z");
//! let back: Event = serde_json::from_value(json)?;
//! assert_eq!(back, event);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema::{AttributeType, ResourceSchema};
use crate::store::StoreError;

/// One change to one resource, as a host reacts to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// A unique id (a version-4 UUID), the same on every delivery of this event:
    /// consumers de-duplicate by it.
    pub id: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The resource type's name (`User`, `Group`, or a host's own).
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// The resource's version after the change (its ETag is `W/"<version>"`); for
    /// [`EventKind::Deleted`], the version that was deleted, when the store knows it.
    pub version: u64,
    /// When the change was made (the time written to `meta.lastModified`).
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
}

/// What happened to a resource.
///
/// Each change is reported once: `active` flipping is [`Deactivated`](Self::Deactivated)
/// or [`Reactivated`](Self::Reactivated), not also an update of `active`; members
/// that joined or left are [`MembersAdded`](Self::MembersAdded) and
/// [`MembersRemoved`](Self::MembersRemoved), not also an update of `members`. One
/// write can produce several events (a PATCH that renames a group and adds a
/// member: `Updated` and `MembersAdded`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[non_exhaustive]
pub enum EventKind {
    /// The resource was created (POST, or a bulk POST).
    Created {
        /// The attributes it was created with (`id` and `meta` aside).
        attributes: Vec<String>,
    },
    /// Attributes changed, other than an `active` that flipped (reported as
    /// [`Deactivated`](Self::Deactivated) or [`Reactivated`](Self::Reactivated))
    /// and members that joined or left.
    Updated {
        /// The attributes whose values differ, by name as the schema spells them;
        /// an extension's attributes as `urn:…:name`.
        attributes: Vec<String>,
    },
    /// A user's `active` went from true (or absent) to false.
    Deactivated,
    /// A user's `active` went from false to true (or was removed).
    Reactivated,
    /// The resource was deleted.
    Deleted,
    /// Resources joined the group.
    MembersAdded {
        /// The ids of the members that joined, as the group lists them.
        members: Vec<String>,
    },
    /// Resources left the group (a removal, or the member's own deletion).
    MembersRemoved {
        /// The ids of the members that left, as the group listed them.
        members: Vec<String>,
    },
    /// A kind this version does not know, read from a log a newer version wrote:
    /// a consumer skips it (or upgrades) rather than stopping.
    #[serde(other)]
    Unknown,
}

impl EventKind {
    /// The kind's name as it appears in JSON (`created`, `membersAdded`, …).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "created",
            EventKind::Updated { .. } => "updated",
            EventKind::Deactivated => "deactivated",
            EventKind::Reactivated => "reactivated",
            EventKind::Deleted => "deleted",
            EventKind::MembersAdded { .. } => "membersAdded",
            EventKind::MembersRemoved { .. } => "membersRemoved",
            EventKind::Unknown => "unknown",
        }
    }
}

impl Event {
    /// A new event with a fresh id.
    pub fn new(
        kind: EventKind,
        resource_type: &str,
        resource_id: &str,
        version: u64,
        time: DateTime<Utc>,
    ) -> Event {
        Event {
            id: random_uuid(),
            kind,
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_owned(),
            version,
            time,
        }
    }

    /// The events of a member change a store made in place: the members that
    /// joined and those that left, each kind only when not empty, and
    /// `Updated { attributes: [attribute] }` when the change only altered members'
    /// sub-attributes (`display`).
    pub fn of_members(
        resource_type: &str,
        resource_id: &str,
        version: u64,
        time: DateTime<Utc>,
        attribute: &str,
        added: Vec<String>,
        removed: Vec<String>,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        if added.is_empty() && removed.is_empty() {
            out.push(EventKind::Updated {
                attributes: vec![attribute.to_owned()],
            });
        }
        if !added.is_empty() {
            out.push(EventKind::MembersAdded { members: added });
        }
        if !removed.is_empty() {
            out.push(EventKind::MembersRemoved { members: removed });
        }
        out.into_iter()
            .map(|k| Event::new(k, resource_type, resource_id, version, time))
            .collect()
    }
}

/// An event as a store keeps it: its place in the store's log and the tenant (the
/// store's context) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent<T> {
    /// The event's position in the log: increasing in commit order, so events of
    /// one resource come in the order their changes committed.
    pub sequence: u64,
    /// The tenant the resource belongs to.
    pub tenant: T,
    /// The event.
    pub event: Event,
}

/// A store's event log, read by named consumers, each with its own durable cursor.
///
/// Delivery is at least once: [`EventLog::read_events`] returns the events after
/// the consumer's last acknowledgement, in sequence order, again and again until
/// the consumer [acknowledges](EventLog::acknowledge_events) them. A consumer that
/// crashes between handling an event and acknowledging it sees it again, so it
/// de-duplicates by [`Event::id`] (or makes its reaction idempotent).
pub trait EventLog: Send + Sync {
    /// The tenant each event carries (the store's context, or its key).
    type Tenant: Send + Sync;

    /// Up to `limit` events after what `consumer` acknowledged, oldest first. A
    /// consumer not seen before starts at the oldest event kept.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    fn read_events(
        &self,
        consumer: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent<Self::Tenant>>, StoreError>> + Send;

    /// Records that `consumer` handled every event up to and including `sequence`.
    /// Acknowledging less than before changes nothing.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    fn acknowledge_events(
        &self,
        consumer: &str,
        sequence: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes events every known consumer acknowledged and that are older than
    /// `before`; when no consumer is known, events older than `before`. Returns how
    /// many were deleted. Events a known consumer has not acknowledged are kept
    /// whatever their age.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    fn prune_events(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// The events of one write to one resource, at the version it produced.
pub(crate) struct Change<'a> {
    pub rt: &'a ResourceSchema<'a>,
    pub id: &'a str,
    pub version: u64,
    pub time: DateTime<Utc>,
}

impl Change<'_> {
    pub(crate) fn created(&self, doc: &Map<String, Value>) -> Vec<Event> {
        let mut attributes = Vec::new();
        for (key, value) in doc {
            match value {
                _ if is_bookkeeping(key) => {}
                // An extension's object: its attributes, by URN.
                Value::Object(ext) if key.contains(':') => {
                    attributes.extend(ext.keys().map(|sub| format!("{key}:{sub}")));
                }
                _ => attributes.push(key.clone()),
            }
        }
        vec![self.event(EventKind::Created { attributes })]
    }

    pub(crate) fn deleted(&self) -> Vec<Event> {
        vec![self.event(EventKind::Deleted)]
    }

    fn event(&self, kind: EventKind) -> Event {
        Event::new(kind, self.rt.name(), self.id, self.version, self.time)
    }

    /// The events of an update from `before` to `after`. The members attribute
    /// (a group's `members`) is compared only when `compare_members` says so: a
    /// PATCH that does not touch it may hold it in neither document.
    pub(crate) fn updated(
        &self,
        before: &Map<String, Value>,
        after: &Map<String, Value>,
        compare_members: bool,
    ) -> Vec<Event> {
        let mut keys: Vec<&String> = before.keys().collect();
        keys.extend(after.keys().filter(|k| !before.contains_key(*k)));
        let core = self.rt.core();
        let active = core
            .attribute("active")
            .filter(|a| a.attr_type() == AttributeType::Boolean && !a.is_multi_valued())
            .map(|a| a.name().to_owned());
        let members = core
            .attribute("members")
            .filter(|a| a.is_multi_valued() && a.sub_attribute("value").is_some())
            .map(|a| {
                let exact = a.sub_attribute("value").is_some_and(|v| v.is_case_exact());
                (a.name().to_owned(), exact)
            });
        let mut events = Vec::new();
        let mut attributes = Vec::new();
        for key in keys {
            if is_bookkeeping(key) {
                continue;
            }
            let (old, new) = (before.get(key), after.get(key));
            if old == new || members.as_ref().is_some_and(|(name, _)| name == key) {
                continue;
            }
            if active.as_deref() == Some(key.as_str()) {
                let is_true = |v: Option<&Value>| v.is_none_or(|v| v != &Value::Bool(false));
                match (is_true(old), is_true(new)) {
                    (true, false) => events.push(self.event(EventKind::Deactivated)),
                    (false, true) => events.push(self.event(EventKind::Reactivated)),
                    _ => attributes.push(key.clone()),
                }
                continue;
            }
            match (old, new) {
                // An extension's object: name the attributes inside it that differ.
                (o, n)
                    if key.contains(':')
                        && (o.is_some_and(Value::is_object) || n.is_some_and(Value::is_object)) =>
                {
                    let empty = Map::new();
                    let o = o.and_then(Value::as_object).unwrap_or(&empty);
                    let n = n.and_then(Value::as_object).unwrap_or(&empty);
                    for sub in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
                        if o.get(sub) != n.get(sub) {
                            attributes.push(format!("{key}:{sub}"));
                        }
                    }
                }
                _ => attributes.push(key.clone()),
            }
        }
        if let Some((name, exact)) = members.as_ref().filter(|_| compare_members) {
            let (old, new) = (before.get(name), after.get(name));
            let (added, removed) = member_diff(&member_ids(old), &member_ids(new), *exact);
            if added.is_empty() && removed.is_empty() && old != new {
                attributes.push(name.clone());
            }
            if !added.is_empty() {
                events.push(self.event(EventKind::MembersAdded { members: added }));
            }
            if !removed.is_empty() {
                events.push(self.event(EventKind::MembersRemoved { members: removed }));
            }
        }
        if !attributes.is_empty() {
            events.insert(0, self.event(EventKind::Updated { attributes }));
        }
        events
    }
}

/// Members of a resource that are not attributes a host reacts to: `id`, `meta`,
/// and `schemas` (which follows the extensions, reported by their attributes).
fn is_bookkeeping(key: &str) -> bool {
    matches!(key, "id" | "meta" | "schemas")
}

/// The member ids a members value lists.
fn member_ids(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The ids in `after` and not in `before`, and those in `before` and not in
/// `after`, comparing as `members.value` does.
fn member_diff(
    before: &[String],
    after: &[String],
    case_exact: bool,
) -> (Vec<String>, Vec<String>) {
    let key = |id: &String| {
        if case_exact {
            id.clone()
        } else {
            id.to_lowercase()
        }
    };
    let old: HashSet<String> = before.iter().map(key).collect();
    let new: HashSet<String> = after.iter().map(key).collect();
    let added = after
        .iter()
        .filter(|id| !old.contains(&key(id)))
        .cloned()
        .collect();
    let removed = before
        .iter()
        .filter(|id| !new.contains(&key(id)))
        .cloned()
        .collect();
    (added, removed)
}

/// A version-4 UUID (122 random bits) from the standard library's randomly keyed
/// hasher, a counter and the time: resource ids and event ids.
pub(crate) fn random_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u128(nanos);
        h.finish()
    };
    let (a, b) = (half(0x5c1b), half(0xa7e3));
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        8 | (b >> 60 & 0x3),
        &hex[17..20],
        &hex[20..32]
    )
}

/// `time` as RFC 3339 in UTC, as `meta.lastModified` is written.
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::store::timestamp(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_from_a_newer_version_is_unknown_not_an_error() {
        let json = serde_json::json!({
            "id": "e1", "type": "passwordRotated", "resourceType": "User",
            "resourceId": "u1", "version": 3, "time": "2026-05-13T04:42:34Z"
        });
        let event: Event = serde_json::from_value(json).expect("readable");
        assert_eq!(event.kind, EventKind::Unknown);
        assert_eq!(event.kind.name(), "unknown");
    }
}
