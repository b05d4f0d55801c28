//! The PATCH engine: a typical Entra ID user update and the Okta deactivation on
//! the RFC's full user, member add and remove on groups of 10, 10,000 and 100,000
//! members, each beside the floor of serde_json parsing and serialising the same
//! resource, json-patch's edit at a known position, and reading every member's
//! value once (what finding a member costs in a JSON document); and hostile PATCHes whose cost must stay (operations × elements each
//! operation looks at): 1,000 filtered removes against 1,000 emails, and 40 small
//! operations on a user holding 1,000 emails.

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry};
use serde_json::{Value, json};
use std::hint::black_box;

const FULL_USER: &str = include_str!("../tests/vectors/rfc7643/enterprise-user.json");
const ENTRA_UPDATE: &str =
    include_str!("../tests/fixtures/patch/entra-replace-attributes-default.json");
/// Entra ID's four-operation update: work email, family name, userName, active.
const ENTRA_UPDATE_4: &str = include_str!("../tests/fixtures/patch/entra-update-user.json");
const OKTA_DEACTIVATE: &str = include_str!("../tests/fixtures/patch/okta-deactivate.json");

fn fixture(text: &str) -> PatchOp {
    let v: Value = serde_json::from_str(text).expect("fixture");
    serde_json::from_value(v["request"].clone()).expect("PatchOp")
}

fn group(members: usize) -> Value {
    let list: Vec<Value> = (0..members)
        .map(|i| json!({"value": format!("2819c223-7f76-453a-919d-{i:012}"), "display": format!("User {i}")}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": list
    })
}

fn users(c: &mut Criterion) {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let user: Value = serde_json::from_str(FULL_USER).expect("user");
    let options = PatchOptions::default();

    let mut g = c.benchmark_group("patch/user");
    for (name, op) in [
        ("entra_update_6_ops", fixture(ENTRA_UPDATE)),
        ("entra_update_4_ops", fixture(ENTRA_UPDATE_4)),
        ("okta_deactivate", fixture(OKTA_DEACTIVATE)),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || user.clone(),
                |doc| patch::apply(&users, doc, black_box(&op), &options).expect("applies"),
                BatchSize::SmallInput,
            )
        });
    }
    g.bench_function("floor_serde_json_parse_and_serialise", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_str(black_box(FULL_USER)).expect("json");
            serde_json::to_string(&v).expect("json")
        })
    });
    g.finish();
}

fn groups(c: &mut Criterion) {
    let registry = Registry::core();
    let groups = registry.resource_type("Group").expect("Group");
    let options = PatchOptions::default();
    let add: PatchOp = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": "f648f8d5ea4e4cd38e9c"}]}]
    }))
    .expect("PatchOp");
    let remove: PatchOp = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-000000000005\"]"}]
    }))
    .expect("PatchOp");

    let mut g = c.benchmark_group("patch/group");
    g.sample_size(20);
    for size in [10usize, 10_000, 100_000] {
        let doc = group(size);
        let text = serde_json::to_string(&doc).expect("json");
        g.bench_with_input(BenchmarkId::new("add_member", size), &size, |b, _| {
            b.iter_batched_ref(
                || doc.clone(),
                |d| patch::apply(&groups, d, black_box(&add), &options).expect("applies"),
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("remove_member", size), &size, |b, _| {
            b.iter_batched_ref(
                || doc.clone(),
                |d| patch::apply(&groups, d, black_box(&remove), &options).expect("applies"),
                BatchSize::LargeInput,
            )
        });
        // The floor: RFC 6902 on a known position, no search (json-patch).
        let append: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/members/-", "value": {"value": "f648f8d5ea4e4cd38e9c"}}
        ]))
        .expect("json-patch");
        let remove_at: json_patch::Patch =
            serde_json::from_value(json!([{"op": "remove", "path": "/members/5"}]))
                .expect("json-patch");
        g.bench_with_input(
            BenchmarkId::new("floor_json_patch_append", size),
            &size,
            |b, _| {
                b.iter_batched_ref(
                    || doc.clone(),
                    |d| json_patch::patch(d, black_box(&append)).expect("applies"),
                    BatchSize::LargeInput,
                )
            },
        );
        g.bench_with_input(
            BenchmarkId::new("floor_json_patch_remove_at", size),
            &size,
            |b, _| {
                b.iter_batched_ref(
                    || doc.clone(),
                    |d| json_patch::patch(d, black_box(&remove_at)).expect("applies"),
                    BatchSize::LargeInput,
                )
            },
        );
        // The floor of both member changes on a plain JSON document: an add must
        // look for the value among the members (RFC 7644 §3.5.2.1: adding a value
        // that is there changes nothing), and a removal by filter must find every
        // member it selects. This reads each member's `value` once, nothing more, in a
        // copy made just before, as the engine's runs are.
        g.bench_with_input(
            BenchmarkId::new("floor_read_every_member_value", size),
            &size,
            |b, _| {
                b.iter_batched_ref(
                    || doc.clone(),
                    |d| {
                        d["members"].as_array().map_or(0, |members| {
                            members
                                .iter()
                                .filter(|m| {
                                    m.get("value").and_then(Value::as_str).is_some_and(|v| {
                                        v.eq_ignore_ascii_case(black_box("f648f8d5ea4e4cd38e9c"))
                                    })
                                })
                                .count()
                        })
                    },
                    BatchSize::LargeInput,
                )
            },
        );
        g.bench_with_input(
            BenchmarkId::new("floor_serde_json_parse_and_serialise", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let v: Value = serde_json::from_str(black_box(&text)).expect("json");
                    serde_json::to_string(&v).expect("json")
                })
            },
        );
    }
    g.finish();
}

fn user_with_emails(n: usize) -> Value {
    let emails: Vec<Value> = (0..n)
        .map(|i| json!({"value": format!("x{i}"), "type": "work"}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen",
        "emails": emails
    })
}

fn hostile(c: &mut Criterion) {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let options = PatchOptions::default();
    let user = user_with_emails(1_000);
    let removes: Vec<Value> = (0..1_000)
        .map(|i| json!({"op": "remove", "path": format!("emails[value eq \"x{i}\"]")}))
        .collect();
    let removes: PatchOp = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": removes
    }))
    .expect("PatchOp");
    let trivial: Vec<Value> = (0..40)
        .map(|i| match i % 4 {
            0 => json!({"op": "replace", "path": "displayName", "value": format!("Babs {i}")}),
            1 => json!({"op": "add", "path": "emails", "value": [{"value": format!("new{i}@example.com")}]}),
            2 => json!({"op": "replace", "path": "emails[value eq \"x500\"].type", "value": format!("t{i}")}),
            _ => json!({"op": "remove", "path": format!("emails[value eq \"new{}@example.com\"]", i - 2)}),
        })
        .collect();
    let trivial: PatchOp = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": trivial
    }))
    .expect("PatchOp");

    let mut g = c.benchmark_group("patch/hostile");
    g.sample_size(20);
    g.bench_function("remove_1000_emails_by_filter_of_1000", |b| {
        b.iter_batched_ref(
            || user.clone(),
            |d| patch::apply(&users, d, black_box(&removes), &options).expect("applies"),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("40_small_ops_on_1000_emails", |b| {
        b.iter_batched_ref(
            || user.clone(),
            |d| patch::apply(&users, d, black_box(&trivial), &options).expect("applies"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, users, groups, hostile);
criterion_main!(benches);
