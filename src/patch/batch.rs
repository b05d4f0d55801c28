//! Runs of keyed removals applied in one pass.
//!
//! Okta removes group members with one `remove members[value eq "…"]` operation
//! each, and a client may remove many emails the same way. Applied one by one, k
//! such removals from a list of n values cost O(n × k). A run of them on one
//! attribute, each a string `eq` on the same sub-attribute, is applied here with a
//! hash index in O(n + k), with exactly the outcome (and, in strict mode, the
//! `noTarget` error and the operation it names) that applying them in order gives.

use std::collections::HashMap;

use super::engine::{Engine, Target, check_removal, find_key, list_slot, no_target};
use crate::error::Error;
use crate::filter::BoundFilter;
use crate::message::{OpKind, PatchOperation};
use crate::path::Path;
use crate::schema::AttrRef;

/// A run shorter than this goes through the general path.
const MIN_RUN: usize = 2;

/// One operation of a run: its parsed path and its bound filter.
struct Keyed<'r> {
    path: Path,
    bound: BoundFilter<'r>,
}

impl<'r> Engine<'_, 'r> {
    /// Applies the run of keyed removals that `ops` starts with, if there is one of
    /// at least two operations: `Some(Ok(n))` when its `n` operations applied,
    /// `Some(Err((i, e)))` when `ops[i]` failed, `None` when `ops` does not start
    /// with such a run.
    pub(super) fn keyed_removals(
        &mut self,
        ops: &[PatchOperation],
    ) -> Option<Result<usize, (usize, Error)>> {
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
                None if at.attribute.is_required() => break,
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
    fn remove_run(&mut self, at: &AttrRef<'_>, run: &[Keyed<'_>]) -> Result<(), (usize, Error)> {
        let lenient = self.opts.lenient;
        let attr = at.attribute;
        let missing = |i: usize| (i, no_target(attr, run[i].path.filter()));
        let container = self.container(at, false).map_err(|e| (0, e))?;
        let Some(container) = container else {
            return if lenient { Ok(()) } else { Err(missing(0)) };
        };
        let Some(key) = find_key(container, attr.name()) else {
            return if lenient { Ok(()) } else { Err(missing(0)) };
        };
        check_removal(attr).map_err(|e| (0, e))?;
        let list = list_slot(container, &key, attr).map_err(|e| (0, e))?;

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
        let mut removed = vec![false; list.len()];
        for (slot, element) in removed.iter_mut().zip(list.iter()) {
            let Some(obj) = element.as_object() else {
                continue;
            };
            let first = test
                .element_keys(obj)
                .filter_map(|k| first_op.get(k.as_ref()).copied())
                .min();
            if let Some(i) = first {
                hit[i] = true;
                *slot = true;
            }
        }
        if !lenient {
            if let Some(i) = hit.iter().position(|h| !h) {
                return Err(missing(i));
            }
        }
        let mut gone = removed.into_iter();
        list.retain(|_| !gone.next().unwrap_or(false));
        self.tidy(at);
        Ok(())
    }
}
