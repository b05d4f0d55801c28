//! What the differential tests share: users as stores keep them, the order
//! scimkit's in-memory query gives, and translators with key columns.
#![allow(dead_code)]

pub mod relational;

use proptest::prelude::*;
use scimkit::filter::Filter;
use scimkit::schema::SharedResourceSchema;
use scimkit::store::{ListQuery, Projection, Record, Sort, apply_query};
use scimkit::{Registry, SortOrder, path::AttrPath};
use scimkit_sql::{Dialect, Translator};
use serde_json::Value;

/// The attributes the SQLite store gives key columns, and those columns.
pub const KEYS: [(&str, &str); 4] = [
    ("userName", "k_user_name"),
    ("externalId", "k_external_id"),
    ("displayName", "k_display_name"),
    ("id", "k_id"),
];

/// A translator for users that writes the guards of [`KEYS`] on their columns and,
/// on PostgreSQL, containment on the document without `id`, `userName` and `meta`
/// (as the store does).
pub fn keyed(dialect: Dialect) -> Translator {
    let users =
        SharedResourceSchema::new(std::sync::Arc::new(Registry::core()), "User").expect("User");
    let keyed = KEYS
        .iter()
        .fold(Translator::new(users, "cmp", dialect), |t, (a, c)| {
            t.with_key_column(a, c)
        });
    match dialect {
        Dialect::Postgres => keyed.with_containment_on(
            "(cmp - '{id,userName,meta}'::text[])",
            &["id", "userName", "meta"],
        ),
        _ => keyed,
    }
}

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
    expected_page(filter, users, sort, 1, usize::MAX).0
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
        after: None,
        count_total: true,
        projection: &projection,
    };
    let page = apply_query(&records, &query);
    (
        page.records.into_iter().map(|r| r.id).collect(),
        page.total_results,
    )
}

/// Users behind disagreements found so far (kept as fixed vectors): a missing
/// `externalId`, LIKE wildcards in values, an empty string, several emails, the
/// Kelvin sign, a dateTime with an offset, a non-ASCII capital.
pub fn fixed_users() -> Vec<Value> {
    normalized(vec![
        serde_json::json!({"userName": "a", "externalId": "x1"}),
        serde_json::json!({"userName": "b"}),
        serde_json::json!({"userName": "x%y", "title": "", "emails": [{"value": "A@X", "type": "work"}]}),
        serde_json::json!({"userName": "xay", "emails": [{"value": "b@x", "type": "home"}, {"value": "c@x", "type": "work"}]}),
        serde_json::json!({"userName": "\u{212A}elvin", "meta": {"created": "2011-05-13T06:42:34+02:00"}}),
        serde_json::json!({"userName": "Äpfel", "title": "B"}),
    ])
}

/// The filters of the fixed vectors.
pub const FIXED_FILTERS: &[&str] = &[
    r#"externalId ne "x1""#,
    r#"not (externalId sw "x")"#,
    r#"userName co "%""#,
    r#"userName sw "x_""#,
    r#"userName eq "KELVIN""#,
    r#"userName eq "kelvin""#,
    r#"userName gt "b""#,
    r#"userName eq "äPFEL""#,
    r#"title lt "a""#,
    r#"title pr"#,
    r#"title eq """#,
    r#"emails[type eq "work" and value co "@x"]"#,
    r#"emails[type eq "home" and value eq "c@x"]"#,
    r#"meta.created eq "2011-05-13T04:42:34Z""#,
    r#"meta.created gt "2011-05-13T04:00:00-01:00""#,
    r#"meta.created co "06:42""#,
    r#"emails pr"#,
    r#"emails eq "a@x""#,
    r#"name pr"#,
    r#"password pr"#,
    r#"userName lt "b\u0000""#,
    r#"userName ne "a\u0000""#,
    r#"name eq null and not (userName co "a")"#,
    r#"userName gt "it's" and not (id pr)"#,
];
