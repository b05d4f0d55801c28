//! References between resources: a group's members name resources that exist.
//!
//! A multi-valued complex attribute whose `$ref` sub-attribute names registered
//! resource types in its `referenceTypes` (the Group's `members`: User and Group,
//! RFC 7643 §4.2, §8.7.1) holds references. Before such values are written, the
//! service asks the store which of the ids it has not seen before exist, in one
//! query per referenced type (a chunked `id eq` list for stores that cannot answer
//! directly), and refuses the write naming the ids that do not.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::limits::is_reference_list;
use super::{Service, store_error};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::path::AttrPath;
use crate::schema::{Attribute, ResourceSchema};
use crate::store::{ListQuery, MemberChange, Projection, Store};

/// How many ids one fallback `id eq … or …` list names.
const FALLBACK_CHUNK: usize = 100;
/// How many missing ids an error message lists.
const LISTED: usize = 10;

impl<S: Store> Service<S> {
    /// The writable attributes of `rt` that reference other resources, each with the
    /// names of the registered resource types it may reference.
    fn reference_attributes<'r>(&self, rt: &ResourceSchema<'r>) -> Vec<(&'r Attribute, Vec<&str>)> {
        if !self.config.check_references {
            return Vec::new();
        }
        rt.core()
            .attributes
            .iter()
            .filter(|a| is_reference_list(a))
            .filter_map(|a| {
                let types: Vec<&str> = a
                    .sub_attribute("$ref")?
                    .reference_types()
                    .iter()
                    .filter_map(|t| self.registry.resource_type(t).map(|rs| rs.name()))
                    .collect();
                (!types.is_empty()).then_some((a, types))
            })
            .collect()
    }

    /// The resource types the members of `attribute` must exist as, when the
    /// service checks references (empty when it does not).
    pub(super) fn member_types(&self, rt: &ResourceSchema<'_>, attribute: &str) -> Vec<String> {
        self.reference_attributes(rt)
            .into_iter()
            .filter(|(attr, _)| attr.name().eq_ignore_ascii_case(attribute))
            .flat_map(|(_, types)| types.into_iter().map(str::to_owned))
            .collect()
    }

    /// Checks the references in a resource about to be written: every value of a
    /// reference attribute in `new` that `old` (the stored resource, on replace) does
    /// not already hold must name an existing resource.
    ///
    /// # Errors
    /// 400 `invalidValue` naming the ids that exist nowhere.
    pub(super) async fn check_references(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        new: &Map<String, Value>,
        old: Option<&Map<String, Value>>,
    ) -> Result<()> {
        for (attr, types) in self.reference_attributes(rt) {
            let before: HashSet<&str> = old
                .map(|o| values_of(attr, o).collect())
                .unwrap_or_default();
            let ids: Vec<&str> = values_of(attr, new)
                .filter(|id| !before.contains(id))
                .collect();
            self.verify_ids(ctx, attr, &types, ids).await?;
        }
        Ok(())
    }

    /// Checks the references a PATCH may have added: the strings its operations
    /// carry that are now values of a reference attribute. (Any new value came from
    /// the request, so this costs one pass over the list and no copy of it.)
    ///
    /// # Errors
    /// 400 `invalidValue` naming the ids that exist nowhere.
    pub(super) async fn check_patched_references(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        op: &crate::PatchOp,
        new: &Map<String, Value>,
    ) -> Result<()> {
        let attrs = self.reference_attributes(rt);
        if attrs.is_empty() {
            return Ok(());
        }
        let mut sent = HashSet::new();
        for operation in &op.operations {
            if let Some(value) = &operation.value {
                strings_in(value, &mut sent);
            }
        }
        for (attr, types) in attrs {
            let ids: Vec<&str> = values_of(attr, new)
                .filter(|id| sent.contains(id))
                .collect();
            self.verify_ids(ctx, attr, &types, ids).await?;
        }
        Ok(())
    }

    /// Checks the members a member delta adds.
    ///
    /// # Errors
    /// 400 `invalidValue` naming the ids that exist nowhere.
    pub(super) async fn check_added_members(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        attribute: &str,
        changes: &[MemberChange],
    ) -> Result<()> {
        for (attr, types) in self.reference_attributes(rt) {
            if !attr.name().eq_ignore_ascii_case(attribute) {
                continue;
            }
            let ids: Vec<&str> = changes
                .iter()
                .filter_map(|c| match c {
                    MemberChange::Add(v) => v.get("value").and_then(Value::as_str),
                    MemberChange::Remove(_) => None,
                })
                .collect();
            self.verify_ids(ctx, attr, &types, ids).await?;
        }
        Ok(())
    }

    /// Looks `ids` up among `types`; the ones found nowhere make the error.
    async fn verify_ids(
        &self,
        ctx: &S::Context,
        attr: &Attribute,
        types: &[&str],
        ids: Vec<&str>,
    ) -> Result<()> {
        let mut missing: Vec<&str> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if seen.insert(id) {
                missing.push(id);
            }
        }
        let case_exact = attr
            .sub_attribute("value")
            .is_some_and(Attribute::compares_case_exact);
        for name in types {
            if missing.is_empty() {
                return Ok(());
            }
            let found: HashSet<String> = self.existing(ctx, name, &missing, case_exact).await?;
            missing.retain(|id| !found.contains(*id));
        }
        if missing.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = missing
            .iter()
            .take(LISTED)
            .map(|id| format!("{id:?}"))
            .collect();
        let more = match missing.len().saturating_sub(LISTED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        Err(Error::invalid_value(format!(
            "'{}' must name existing resources ({}), and these do not exist: {}{more}",
            attr.name(),
            types.join(" or "),
            shown.join(", ")
        )))
    }

    /// The ids among `ids` that name resources of the type `name`.
    async fn existing(
        &self,
        ctx: &S::Context,
        name: &str,
        ids: &[&str],
        case_exact: bool,
    ) -> Result<HashSet<String>> {
        if let Some(found) = self
            .store
            .existing_ids(ctx, name, ids, case_exact)
            .await
            .map_err(|e| store_error(e, name))?
        {
            return Ok(found.into_iter().collect());
        }
        let Some(rt) = self.registry.resource_type(name) else {
            return Ok(HashSet::new());
        };
        let projection = Projection {
            attributes: vec![AttrPath::new("id")],
            excluded: Vec::new(),
        };
        let mut found = HashSet::new();
        for chunk in ids.chunks(FALLBACK_CHUNK) {
            let filter = Filter::Or(
                chunk
                    .iter()
                    .map(|id| Filter::eq(AttrPath::new("id"), *id))
                    .collect(),
            );
            let query = ListQuery {
                schema: rt,
                filter: Some(&filter),
                sort: None,
                start_index: 1,
                count: chunk.len(),
                after: None,
                count_total: true,
                projection: &projection,
            };
            let page = self
                .store
                .list(ctx, name, &query)
                .await
                .map_err(|e| store_error(e, name))?;
            found.extend(page.records.into_iter().map(|r| r.id));
        }
        Ok(found)
    }
}

/// The `value` of each element of `attr` in `doc`.
fn values_of<'d>(attr: &Attribute, doc: &'d Map<String, Value>) -> impl Iterator<Item = &'d str> {
    doc.get(attr.name())
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Value::as_str))
}

/// Every string in a JSON value (bounded by the request body it came from).
fn strings_in<'v>(value: &'v Value, out: &mut HashSet<&'v str>) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                out.insert(s);
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
}
