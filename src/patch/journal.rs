//! The undo journal that makes a PATCH atomic, at the cost of what it changes.
//!
//! Some operations record a top-level member as it was before they first touch it (a
//! snapshot: small attributes, cheap to copy). The operations identity providers
//! send most record only what they did instead, moving what they replace into the
//! journal rather than copying it: a simple attribute replaced (its old value), a
//! sub-attribute of a complex one set (`name.familyName`: the old sub-value), values
//! appended to a list (undone by truncating) and values removed from it (undone by
//! putting them back). So adding one member to a group of 100,000 copies nothing,
//! and neither does Okta's deactivation or Entra ID's update of a user.
//!
//! Undoing runs backwards through the entries, each restoring the state just before
//! it, so entries of both kinds can follow each other on one member in any order.

use std::collections::HashSet;

use serde_json::{Map, Value};

#[derive(Clone)]
enum Entry {
    /// A top-level member before it was first touched (`None`: absent).
    Snapshot { key: String, old: Option<Value> },
    /// The list at `key` had `len` values before more were appended.
    Appended { key: String, len: usize },
    /// Values removed from the list at `key`, with the positions they had, in
    /// ascending order of position.
    Removed {
        key: String,
        items: Vec<(usize, Value)>,
    },
    /// The member `sub` of the object at `key` was set; `old` is what it held
    /// (`None`: absent). The object itself was there before and stays.
    SubSet {
        key: String,
        sub: String,
        old: Option<Value>,
    },
    /// Sub-attributes of values of the list at `key` were set, in this order:
    /// (position, sub-attribute, what it held). No value was added or removed.
    ElementSubs {
        key: String,
        changes: Vec<ElementChange>,
    },
}

/// One sub-attribute of one value of a list, as it was: (position, name, value).
pub(super) type ElementChange = (usize, String, Option<Value>);

impl Entry {
    fn key(&self) -> &str {
        match self {
            Entry::Snapshot { key, .. }
            | Entry::Appended { key, .. }
            | Entry::Removed { key, .. }
            | Entry::SubSet { key, .. }
            | Entry::ElementSubs { key, .. } => key,
        }
    }

    /// Puts `obj` back as it was just before this entry's change.
    fn undo(self, obj: &mut Map<String, Value>) {
        match self {
            Entry::Snapshot { key, old: Some(v) } => {
                obj.insert(key, v);
            }
            Entry::Snapshot { key, old: None } => {
                obj.remove(&key);
            }
            Entry::Appended { key, len } => {
                if let Some(Value::Array(list)) = obj.get_mut(&key) {
                    list.truncate(len);
                }
            }
            Entry::Removed { key, items } => {
                if let Some(Value::Array(list)) = obj.get_mut(&key) {
                    for (i, v) in items {
                        list.insert(i.min(list.len()), v);
                    }
                }
            }
            Entry::SubSet { key, sub, old } => {
                if let Some(Value::Object(member)) = obj.get_mut(&key) {
                    put_back(member, sub, old);
                }
            }
            Entry::ElementSubs { key, changes } => {
                if let Some(Value::Array(list)) = obj.get_mut(&key) {
                    for (i, sub, old) in changes.into_iter().rev() {
                        if let Some(Value::Object(element)) = list.get_mut(i) {
                            put_back(element, sub, old);
                        }
                    }
                }
            }
        }
    }
}

/// Sets `sub` of `object` back to `old` (`None`: absent).
fn put_back(object: &mut Map<String, Value>, sub: String, old: Option<Value>) {
    match old {
        Some(v) => {
            object.insert(sub, v);
        }
        None => {
            object.remove(&sub);
        }
    }
}

/// What a PATCH changed so far, to undo it or to tell whether it changed anything.
#[derive(Default)]
pub(super) struct Journal {
    entries: Vec<Entry>,
}

impl Journal {
    /// Whether `key` has a snapshot, which then restores it whatever follows.
    pub(super) fn has_snapshot(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Snapshot { key: k, .. } if k == key))
    }

    /// Records `key` as it is now, unless it has a snapshot already.
    pub(super) fn snapshot(&mut self, obj: &Map<String, Value>, key: &str) {
        if !self.has_snapshot(key) {
            self.entries.push(Entry::Snapshot {
                key: key.to_owned(),
                old: obj.get(key).cloned(),
            });
        }
    }

    /// Records that the member `key` held `old` before it was replaced or removed
    /// (the value is moved here, not copied).
    pub(super) fn replaced(&mut self, key: &str, old: Option<Value>) {
        self.entries.push(Entry::Snapshot {
            key: key.to_owned(),
            old,
        });
    }

    /// Records that `sub` of the object at `key` held `old` before it was set (the
    /// object was there, and a value was set that keeps it non-empty).
    pub(super) fn sub_set(&mut self, key: &str, sub: &str, old: Option<Value>) {
        self.entries.push(Entry::SubSet {
            key: key.to_owned(),
            sub: sub.to_owned(),
            old,
        });
    }

    /// Records sub-attributes of values of the list at `key` as they were before
    /// they were set, in the order they were set.
    pub(super) fn element_subs(&mut self, key: &str, changes: Vec<ElementChange>) {
        if !changes.is_empty() {
            self.entries.push(Entry::ElementSubs {
                key: key.to_owned(),
                changes,
            });
        }
    }

    /// Records that the list at `key` had `len` values before an append.
    pub(super) fn appended(&mut self, key: &str, len: usize) {
        self.entries.push(Entry::Appended {
            key: key.to_owned(),
            len,
        });
    }

    /// Records values removed from the list at `key` (with their former positions,
    /// ascending).
    pub(super) fn removed(&mut self, key: &str, items: Vec<(usize, Value)>) {
        if !items.is_empty() {
            self.entries.push(Entry::Removed {
                key: key.to_owned(),
                items,
            });
        }
    }

    /// Undoes everything, newest first.
    pub(super) fn rollback(&mut self, obj: &mut Map<String, Value>) {
        while let Some(entry) = self.entries.pop() {
            entry.undo(obj);
        }
    }

    /// Whether `obj` differs from what it was before the first entry.
    ///
    /// A member whose first entry is a snapshot compares with it. A list that was
    /// only appended to, or only removed from, changed. Only a list with both (a
    /// remove and an add of the same value may leave it as it was) is rebuilt from
    /// its entries and compared.
    pub(super) fn changed(&self, obj: &Map<String, Value>) -> bool {
        // Distinct keys are few (a resource's attributes), entries may be many.
        let mut seen: Vec<&str> = Vec::new();
        for entry in &self.entries {
            let key = entry.key();
            if seen.contains(&key) {
                continue;
            }
            if self.entries.len() > 1 {
                seen.push(key);
            }
            let changed = match entry {
                Entry::Snapshot { old, .. } => obj.get(key) != old.as_ref(),
                Entry::SubSet { .. } | Entry::ElementSubs { .. } => self.subs_changed(obj, key),
                _ => self.list_changed(obj, key),
            };
            if changed {
                return true;
            }
        }
        false
    }

    /// For a member whose first entry sets a sub-attribute: when every entry of
    /// the member does, it changed if some sub-attribute differs from what the first
    /// entry naming it found; otherwise it is rebuilt and compared.
    fn subs_changed(&self, obj: &Map<String, Value>, key: &str) -> bool {
        let entries = || self.entries.iter().filter(|e| e.key() == key);
        if !entries().all(|e| matches!(e, Entry::SubSet { .. } | Entry::ElementSubs { .. })) {
            return self.rebuilt_differs(obj, key);
        }
        let now = obj.get(key);
        let current = |at: Option<usize>, sub: &str| {
            let object = match at {
                None => now.and_then(Value::as_object),
                Some(i) => now
                    .and_then(Value::as_array)
                    .and_then(|l| l.get(i))
                    .and_then(Value::as_object),
            };
            object.and_then(|m| m.get(sub))
        };
        // Each place (a position in the list, or none) and sub-attribute compares
        // with what the first entry naming it found.
        let mut seen: HashSet<(Option<usize>, &str)> = HashSet::new();
        for entry in entries() {
            let (single, many) = match entry {
                Entry::SubSet { sub, old, .. } => (Some((None, sub.as_str(), old)), &[][..]),
                Entry::ElementSubs { changes, .. } => (None, changes.as_slice()),
                _ => (None, &[][..]),
            };
            let places = single.into_iter().chain(
                many.iter()
                    .map(|(i, sub, old)| (Some(*i), sub.as_str(), old)),
            );
            for (at, sub, old) in places {
                if seen.insert((at, sub)) && current(at, sub) != old.as_ref() {
                    return true;
                }
            }
        }
        false
    }

    /// For a member whose first entry is a list entry.
    fn list_changed(&self, obj: &Map<String, Value>, key: &str) -> bool {
        let mut appended = false;
        let mut removed = false;
        let mut other = false;
        for entry in self.entries.iter().filter(|e| e.key() == key) {
            match entry {
                Entry::Appended { .. } => appended = true,
                Entry::Removed { .. } => removed = true,
                Entry::Snapshot { .. } | Entry::SubSet { .. } | Entry::ElementSubs { .. } => {
                    other = true
                }
            }
        }
        if !other && appended != removed {
            return true;
        }
        self.rebuilt_differs(obj, key)
    }

    /// Whether the member `key` differs from what it was, rebuilt from a copy of
    /// what it is now by undoing its entries.
    fn rebuilt_differs(&self, obj: &Map<String, Value>, key: &str) -> bool {
        let mut before = Map::new();
        if let Some(v) = obj.get(key) {
            before.insert(key.to_owned(), v.clone());
        }
        for entry in self.entries.iter().rev().filter(|e| e.key() == key) {
            let copy = entry.clone();
            copy.undo(&mut before);
        }
        before.get(key) != obj.get(key)
    }
}
