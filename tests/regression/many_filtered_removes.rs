//! Two concurrent 55 KB PATCHes of 1,000 `remove emails[value eq "xN"]` took seconds
//! each (every removal scanned and re-evaluated the whole list). Runs of such
//! removals now take one pass with a hash index; `benches/patch.rs`
//! (`patch/hostile`) measures the cost. This guards what the fast path answers.

use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry, ScimType};
use serde_json::{Value, json};

fn user(n: usize) -> Value {
    let emails: Vec<Value> = (0..n)
        .map(|i| json!({"value": format!("x{i}"), "type": "work"}))
        .collect();
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u", "emails": emails})
}

fn removals(values: impl IntoIterator<Item = String>) -> PatchOp {
    let ops: Vec<Value> = values
        .into_iter()
        .map(|v| json!({"op": "remove", "path": format!("emails[value eq {}]", json!(v))}))
        .collect();
    serde_json::from_value(super::patch_op(json!(ops))).expect("PatchOp")
}

#[test]
fn a_thousand_removals_remove_exactly_what_they_name() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    // Every other one, in another case: emails.value is not caseExact.
    let mut doc = user(1_000);
    let op = removals((0..1_000).step_by(2).map(|i| format!("X{i}")));
    let outcome = patch::apply(&users, &mut doc, &op, &PatchOptions::strict()).expect("applies");
    assert!(outcome.changed);
    let left: Vec<&str> = doc["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .map(|e| e["value"].as_str().expect("value"))
        .collect();
    let want: Vec<String> = (1..1_000).step_by(2).map(|i| format!("x{i}")).collect();
    assert_eq!(left, want);

    // All of them: the attribute goes.
    let mut doc = user(1_000);
    patch::apply(
        &users,
        &mut doc,
        &removals((0..1_000).map(|i| format!("x{i}"))),
        &PatchOptions::strict(),
    )
    .expect("applies");
    assert!(doc.get("emails").is_none(), "{doc}");
}

#[test]
fn strict_mode_names_the_first_removal_without_a_target() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let original = user(1_000);
    // The same value twice: the second removal finds nothing left.
    let values = ["x1", "x2", "x3", "X2", "x4"].map(str::to_owned);
    let mut doc = original.clone();
    let err = patch::apply(
        &users,
        &mut doc,
        &removals(values.clone()),
        &PatchOptions::strict(),
    )
    .unwrap_err();
    assert_eq!(err.scim_type(), Some(ScimType::NoTarget));
    assert!(
        err.detail().starts_with("Operations[3] "),
        "{}",
        err.detail()
    );
    assert_eq!(doc, original);
    // Lenient: no target is no change, and the rest apply.
    let mut doc = original.clone();
    patch::apply(
        &users,
        &mut doc,
        &removals(values),
        &PatchOptions::lenient(),
    )
    .expect("applies");
    assert_eq!(doc["emails"].as_array().map(Vec::len), Some(996));
}
