//! List operations that cost what they change.
//!
//! Identity providers change large groups one member at a time: `add members` with
//! a value or two, `remove members[value eq "…"]`, often many removals in one PATCH.
//! Here those operations on a top-level list look at each value once, copy nothing,
//! and journal only what they did (values appended, values removed): adding one
//! member to a group of 100,000 allocates what the member takes. Anything else (a
//! merge into an existing value, a `primary` to move, a list that empties) takes the
//! engine's general path, which journals a snapshot.
//!
//! A run of removals by a string `eq` on one sub-attribute (Okta's member removals)
//! is applied in one pass with a hash index, with exactly the outcome (and, in strict
//! mode, the `noTarget` error and the operation it names) that applying them in order
//! gives.

use std::collections::HashMap;

use serde_json::Value;

use super::engine::{Engine, Target, check_removal, find_key, list_slot, no_target, select};
use crate::error::{Error, Result};
use crate::filter::{BoundFilter, Filter};
use crate::message::{OpKind, PatchOperation};
use crate::path::Path;
use crate::schema::normalize::coerce;
use crate::schema::{AttrRef, Attribute, Mutability};

/// A run shorter than this goes through the general path.
const MIN_RUN: usize = 2;

/// One operation of a run: its parsed path and its bound filter.
struct Keyed<'r> {
    path: Path,
    bound: BoundFilter<'r>,
}

/// How values of a multi-valued attribute are told apart: by their `value`
/// sub-attribute (complex) or themselves (simple), folded unless case-exact, as
/// RFC 7644 §3.5.2.1 "already exists" and the engine's `same_value` compare them.
struct Identity<'a> {
    name: Option<&'a str>,
    case_exact: bool,
}

impl<'a> Identity<'a> {
    fn of(attr: &'a Attribute) -> Option<Identity<'a>> {
        let (name, def) = if attr.is_complex() {
            let def = attr.sub_attribute("value")?;
            (Some(def.name()), def)
        } else {
            (None, attr)
        };
        Some(Identity {
            name,
            case_exact: def.compares_case_exact(),
        })
    }

    /// The text a value is identified by, if it has one.
    fn text<'v>(&self, v: &'v Value) -> Option<&'v str> {
        match self.name {
            Some(name) => crate::schema::registry::get_ci(v.as_object()?, name)?.as_str(),
            None => v.as_str(),
        }
    }

    /// `text` folded for comparing, into `buf` (no allocation for ASCII once `buf`
    /// is large enough).
    fn fold<'b>(&self, text: &'b str, buf: &'b mut String) -> &'b str {
        if self.case_exact {
            return text;
        }
        buf.clear();
        if text.is_ascii() {
            buf.push_str(text);
            buf.make_ascii_lowercase();
        } else {
            buf.push_str(&text.to_lowercase());
        }
        buf
    }

    /// Whether two identity texts name the same value.
    fn same(&self, a: &str, b: &str) -> bool {
        if self.case_exact || a == b {
            return a == b;
        }
        if a.is_ascii() && b.is_ascii() {
            return a.eq_ignore_ascii_case(b);
        }
        a.to_lowercase() == b.to_lowercase()
    }
}

impl<'r> Engine<'_, 'r> {
    /// `add` of values to an existing, non-empty top-level list, journaling the
    /// append only. `None` when the general path must do it (see the module docs).
    pub(super) fn append_values(&mut self, at: &AttrRef<'_>, value: &Value) -> Option<Result<()>> {
        let attr = at.attribute;
        if at.extension || attr.mutability() == Mutability::ReadOnly {
            return None;
        }
        let identity = Identity::of(attr)?;
        let key = find_key(self.obj, attr.name())?.into_owned();
        if self.journal.has_snapshot(&key) {
            return None;
        }
        let Some(Value::Array(list)) = self.obj.get(&key) else {
            return None;
        };
        if list.is_empty() {
            return None;
        }
        let items = match coerce(attr, attr.name(), value.clone()) {
            Err(e) => return Some(Err(e)),
            Ok(Some(Value::Array(items))) => items,
            Ok(Some(single)) => vec![single],
            Ok(None) => return Some(Ok(())),
        };
        let primary = attr.sub_attribute("primary").map(Attribute::name);
        if primary.is_some_and(|p| items.iter().any(|i| i.get(p) == Some(&Value::Bool(true)))) {
            return None;
        }
        let existing = locate(&identity, list, &items);
        // A value already there must stay as it is, and not be the primary one whose
        // mark the general path would enforce (else a snapshot is needed).
        for (item, at) in items.iter().zip(&existing) {
            if let Some(i) = at {
                let is_primary =
                    primary.is_some_and(|p| list[*i].get(p) == Some(&Value::Bool(true)));
                if is_primary || !merge_changes_nothing(&list[*i], item) {
                    return None;
                }
            }
        }
        let len = list.len();
        let Some(Value::Array(list)) = self.obj.get_mut(&key) else {
            return None;
        };
        let mut buf = String::new();
        let mut added: HashMap<String, usize> = HashMap::new();
        for (item, at) in items.into_iter().zip(existing) {
            if at.is_some() {
                continue;
            }
            // A value given twice in one request is added once, the later merged in.
            let earlier = match identity.text(&item) {
                Some(text) => added.get(identity.fold(text, &mut buf)).copied(),
                None => list[len..].iter().position(|v| *v == item).map(|i| len + i),
            };
            match (earlier, item) {
                (Some(i), Value::Object(new)) => {
                    if let Some(Value::Object(old)) = list.get_mut(i) {
                        old.extend(new);
                    }
                }
                (Some(_), _) => {}
                (None, item) => {
                    if let Some(text) = identity.text(&item) {
                        added.insert(identity.fold(text, &mut buf).to_owned(), list.len());
                    }
                    list.push(item);
                }
            }
        }
        if list.len() > len {
            self.journal.appended(&key, len);
        }
        Some(Ok(()))
    }

    /// `remove` of the values a filter selects from a top-level list.
    pub(super) fn remove_selected(&mut self, at: &AttrRef<'_>, filter: &Filter) -> Result<()> {
        let lenient = self.opts.lenient;
        let attr = at.attribute;
        let Some(key) = find_key(self.obj, attr.name()).map(|k| k.into_owned()) else {
            return if lenient {
                Ok(())
            } else {
                Err(no_target(attr, Some(filter)))
            };
        };
        if !matches!(self.obj.get(&key), Some(Value::Array(_))) {
            // A single value becomes a list of one first: a snapshot restores it.
            self.save(&key);
        }
        let list = list_slot(self.obj, &key, attr)?;
        let selected = select(attr, Some(filter), list);
        if selected.is_empty() {
            return if lenient {
                Ok(())
            } else {
                Err(no_target(attr, Some(filter)))
            };
        }
        check_removal(attr)?;
        if attr.is_required() && selected.len() == list.len() {
            return Err(Error::mutability(format!(
                "'{}' is required; removing every value would leave it empty",
                attr.name()
            )));
        }
        self.take_positions(&key, &selected);
        Ok(())
    }

    /// Removes the values at `positions` (ascending) from the top-level list at
    /// `key`: moved into the journal, or, when the list empties (and so goes) or
    /// has a snapshot already, simply dropped after a snapshot.
    fn take_positions(&mut self, key: &str, positions: &[usize]) {
        let empties =
            matches!(self.obj.get(key), Some(Value::Array(l)) if l.len() == positions.len());
        let fine = !empties && !self.journal.has_snapshot(key);
        if !fine {
            self.save(key);
        }
        let Some(Value::Array(list)) = self.obj.get_mut(key) else {
            return;
        };
        let mut taken = Vec::with_capacity(if fine { positions.len() } else { 0 });
        let mut next = positions.iter().copied().peekable();
        let mut write = 0;
        for read in 0..list.len() {
            if next.peek() == Some(&read) {
                next.next();
                if fine {
                    taken.push((read, std::mem::take(&mut list[read])));
                }
            } else {
                list.swap(write, read);
                write += 1;
            }
        }
        list.truncate(write);
        if fine {
            self.journal.removed(key, taken);
        }
    }

    /// Applies the run of keyed removals that `ops` starts with, if there is one of
    /// at least two operations: `Some(Ok(n))` when its `n` operations applied,
    /// `Some(Err((i, e)))` when `ops[i]` failed, `None` when `ops` does not start
    /// with such a run.
    pub(super) fn keyed_removals(
        &mut self,
        ops: &[PatchOperation],
    ) -> Option<std::result::Result<usize, (usize, Error)>> {
        let (at, run) = self.plan_run(ops)?;
        Some(self.remove_run(&at, &run).map(|()| run.len()))
    }

    /// The longest run at the start of `ops`: removals with a value filter that is a
    /// string `eq` on one sub-attribute, all on the same (not required) attribute.
    fn plan_run(&self, ops: &[PatchOperation]) -> Option<(AttrRef<'r>, Vec<Keyed<'r>>)> {
        let mut first: Option<(AttrRef<'r>, String, bool)> = None;
        let mut run = Vec::new();
        for op in ops {
            if op.op != OpKind::Remove || op.value.is_some() {
                break;
            }
            let Some(path) = op
                .path
                .as_deref()
                .and_then(|p| Path::parse_with(p, &self.opts.filter).ok())
            else {
                break;
            };
            if path.sub_attr().is_some() {
                break;
            }
            let Ok(Target::Attr(at, None)) = self.resolve(&path) else {
                break;
            };
            let Some(filter) = path.filter() else { break };
            let bound = filter.bind_element(at.attribute);
            let Some(test) = bound.key_test() else { break };
            let this = (test.name.to_owned(), test.case_exact);
            match &first {
                None if at.attribute.is_required() || at.extension => break,
                None => first = Some((at, this.0, this.1)),
                Some((a, name, exact)) => {
                    let same_attr =
                        std::ptr::eq(a.attribute, at.attribute) && a.schema == at.schema;
                    if !same_attr || *name != this.0 || *exact != this.1 {
                        break;
                    }
                }
            }
            run.push(Keyed { path, bound });
        }
        let (at, ..) = first?;
        (run.len() >= MIN_RUN).then_some((at, run))
    }

    /// Removes every value the run's filters select, in one pass.
    fn remove_run(
        &mut self,
        at: &AttrRef<'_>,
        run: &[Keyed<'_>],
    ) -> std::result::Result<(), (usize, Error)> {
        let lenient = self.opts.lenient;
        let attr = at.attribute;
        let missing = |i: usize| (i, no_target(attr, run[i].path.filter()));
        let Some(key) = find_key(self.obj, attr.name()).map(|k| k.into_owned()) else {
            return if lenient { Ok(()) } else { Err(missing(0)) };
        };
        if !matches!(self.obj.get(&key), Some(Value::Array(_))) {
            self.save(&key);
        }
        check_removal(attr).map_err(|e| (0, e))?;
        let list = list_slot(self.obj, &key, attr).map_err(|e| (0, e))?;

        // Each key names the first operation that selects it, as in order.
        let mut first_op: HashMap<&str, usize> = HashMap::with_capacity(run.len());
        for (i, k) in run.iter().enumerate() {
            if let Some(test) = k.bound.key_test() {
                first_op.entry(test.key).or_insert(i);
            }
        }
        let Some(test) = run[0].bound.key_test() else {
            return Ok(());
        };
        let mut hit = vec![false; run.len()];
        let mut positions = Vec::new();
        for (i, element) in list.iter().enumerate() {
            let Some(obj) = element.as_object() else {
                continue;
            };
            let first = test
                .element_keys(obj)
                .filter_map(|k| first_op.get(k.as_ref()).copied())
                .min();
            if let Some(op) = first {
                hit[op] = true;
                positions.push(i);
            }
        }
        if !lenient {
            if let Some(i) = hit.iter().position(|h| !h) {
                return Err(missing(i));
            }
        }
        self.take_positions(&key, &positions);
        self.tidy(at);
        Ok(())
    }
}

/// For each item, the position of the first value of `list` it is (by identity, or
/// whole for a value without one), in one pass over the list.
fn locate(identity: &Identity<'_>, list: &[Value], items: &[Value]) -> Vec<Option<usize>> {
    if items.len() <= 8 {
        // The usual member add: compare directly, nothing to fold or hash.
        let texts: Vec<Option<&str>> = items.iter().map(|i| identity.text(i)).collect();
        let mut found = vec![None; items.len()];
        let mut left = items.len();
        for (i, v) in list.iter().enumerate() {
            if left == 0 {
                break;
            }
            let text = identity.text(v);
            for (j, item) in items.iter().enumerate() {
                if found[j].is_some() {
                    continue;
                }
                let same = match (text, texts[j]) {
                    (Some(a), Some(b)) => identity.same(a, b),
                    (None, None) => item == v,
                    _ => false,
                };
                if same {
                    found[j] = Some(i);
                    left -= 1;
                }
            }
        }
        return found;
    }
    let mut found = vec![None; items.len()];
    let mut buf = String::new();
    let mut wanted: HashMap<String, Vec<usize>> = HashMap::with_capacity(items.len());
    let mut whole = Vec::new();
    for (j, item) in items.iter().enumerate() {
        match identity.text(item) {
            Some(text) => wanted
                .entry(identity.fold(text, &mut buf).to_owned())
                .or_default()
                .push(j),
            None => whole.push(j),
        }
    }
    let mut left = items.len();
    for (i, v) in list.iter().enumerate() {
        if left == 0 {
            break;
        }
        if let Some(text) = identity.text(v) {
            if let Some(js) = wanted.get(identity.fold(text, &mut buf)) {
                for &j in js {
                    if found[j].is_none() {
                        found[j] = Some(i);
                        left -= 1;
                    }
                }
            }
        } else {
            for &j in &whole {
                if found[j].is_none() && items[j] == *v {
                    found[j] = Some(i);
                    left -= 1;
                }
            }
        }
    }
    found
}

/// Whether merging `new` into the existing value `old` (RFC 7644 §3.5.2.1: given
/// sub-attributes replace, others stay) leaves it as it is.
fn merge_changes_nothing(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => new.iter().all(|(k, v)| old.get(k) == Some(v)),
        _ => true,
    }
}
