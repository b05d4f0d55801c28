//! What the differential tests share: users as stores keep them, and the order
//! scimkit's in-memory query gives.
#![allow(dead_code)]

use proptest::prelude::*;
use scimkit::filter::Filter;
use scimkit::store::{ListQuery, Projection, Record, Sort, apply_query};
use scimkit::{Registry, SortOrder, path::AttrPath};
use serde_json::Value;

/// Users as scimkit's normalisation leaves them (what the stores keep).
pub fn normalized(users: Vec<Value>) -> Vec<Value> {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    users
        .into_iter()
        .filter_map(|u| schema.normalize(u).ok())
        .collect()
}

/// The id of the `n`th user: zero-padded, so ids order as their numbers do.
pub fn id(n: usize) -> String {
    format!("u{n:03}")
}

/// Attributes to sort by: every kind the schema has, a never-returned one and one
/// no schema defines.
pub const SORT_PATHS: &[&str] = &[
    "userName",
    "displayName",
    "title",
    "active",
    "externalId",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "phoneNumbers.value",
    "name.givenName",
    "name",
    "meta.created",
    "password",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "undefinedAttribute",
];

pub fn sort() -> impl Strategy<Value = Sort> {
    (proptest::sample::select(SORT_PATHS), any::<bool>()).prop_map(|(path, desc)| Sort {
        by: AttrPath::parse(path).expect("path"),
        order: if desc {
            SortOrder::Descending
        } else {
            SortOrder::Ascending
        },
    })
}

/// The ids scimkit's in-memory query selects, in its order.
pub fn expected(filter: &Filter, users: &[Value], sort: &Sort) -> Vec<String> {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let records: Vec<Record> = users
        .iter()
        .enumerate()
        .map(|(n, u)| Record {
            id: id(n),
            version: 1,
            resource: u.clone(),
        })
        .collect();
    let projection = Projection::all();
    let query = ListQuery {
        schema,
        filter: Some(filter),
        sort: Some(sort),
        start_index: 1,
        count: usize::MAX,
        projection: &projection,
    };
    apply_query(&records, &query)
        .records
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// The ids and total scimkit's in-memory query gives for one page.
pub fn expected_page(
    filter: &Filter,
    users: &[Value],
    sort: &Sort,
    start_index: usize,
    count: usize,
) -> (Vec<String>, usize) {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let records: Vec<Record> = users
        .iter()
        .enumerate()
        .map(|(n, u)| Record {
            id: id(n),
            version: 1,
            resource: u.clone(),
        })
        .collect();
    let projection = Projection::all();
    let query = ListQuery {
        schema,
        filter: Some(filter),
        sort: Some(sort),
        start_index,
        count,
        projection: &projection,
    };
    let page = apply_query(&records, &query);
    (
        page.records.into_iter().map(|r| r.id).collect(),
        page.total_results,
    )
}
