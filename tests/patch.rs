//! The PATCH engine against vector files: RFC 7644 §3.5.2 examples, identity
//! provider payloads, and errors (with the resource unchanged after each error).

mod common;

use common::json;
use proptest::prelude::*;
use scimkit::patch::{self, PatchOptions};
use scimkit::{Group, PatchOp, PatchOperation, Registry, User};
use serde_json::{Map, Value, json};

/// RFC 7396 JSON merge patch: how the vectors state the exact expected result.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        unreachable!()
    };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn resource(spec: &Value) -> Value {
    match spec {
        Value::String(name) => json(&format!("vectors/rfc7643/{name}.json")),
        inline => inline.clone(),
    }
}

fn patch_body(spec: &Value) -> Value {
    match spec {
        Value::String(name) => json(&format!("fixtures/patch/{name}.json"))["request"].clone(),
        inline => inline.clone(),
    }
}

fn options(spec: &Value) -> PatchOptions {
    match spec {
        Value::Null => PatchOptions::default(),
        Value::String(s) if s == "strict" => PatchOptions::strict(),
        Value::String(s) if s == "lenient" => PatchOptions::lenient(),
        Value::Object(o) => {
            let max = o["max_operations"].as_u64().expect("max_operations") as usize;
            PatchOptions::default().max_operations(max)
        }
        other => panic!("unknown options {other}"),
    }
}

fn run_vectors(file: &str) -> usize {
    let registry = Registry::core();
    let cases = json(&format!("vectors/patch/{file}.json"));
    let mut failures = Vec::new();
    let cases = cases.as_array().expect("array");
    for case in cases {
        let comment = case["comment"].as_str().expect("comment");
        let original = resource(&case["resource"]);
        let rt = registry.resource_type_of(&original).expect("resource type");
        let body = patch_body(&case["patch"]);
        let op: PatchOp = serde_json::from_value(body).expect("PatchOp");
        let opts = options(&case["options"]);
        let mut doc = original.clone();
        let result = patch::apply(&rt, &mut doc, &op, &opts);
        if let Some(error) = case.get("error") {
            match result {
                Ok(_) => failures.push(format!("{comment}: expected an error, got {doc}")),
                Err(e) => {
                    if u64::from(e.status()) != error["status"].as_u64().expect("status") {
                        failures.push(format!("{comment}: status {} ({e})", e.status()));
                    }
                    let want = error.get("scimType").and_then(Value::as_str);
                    if e.scim_type().map(|t| t.as_str()) != want {
                        failures.push(format!(
                            "{comment}: scimType {:?}, want {want:?} ({e})",
                            e.scim_type()
                        ));
                    }
                    if let Some(part) = error.get("detail_contains").and_then(Value::as_str) {
                        if !e.detail().contains(part) {
                            failures
                                .push(format!("{comment}: detail {:?} lacks {part:?}", e.detail()));
                        }
                    }
                    if doc != original {
                        failures.push(format!("{comment}: resource changed on error: {doc}"));
                    }
                }
            }
            continue;
        }
        let mut expected = original.clone();
        merge(&mut expected, &case["expected_merge"]);
        match result {
            Err(e) => failures.push(format!("{comment}: {e}")),
            Ok(outcome) => {
                if doc != expected {
                    failures.push(format!(
                        "{comment}:\n  got      {doc}\n  expected {expected}"
                    ));
                }
                let want_changed = case["changed"].as_bool().unwrap_or(true);
                if outcome.changed != want_changed {
                    failures.push(format!("{comment}: changed = {}", outcome.changed));
                }
                if case["twice"].as_bool() == Some(true) {
                    let again =
                        patch::apply(&rt, &mut doc, &op, &opts).expect("second application");
                    if again.changed || doc != expected {
                        failures.push(format!("{comment}: applying it again changed {doc}"));
                    }
                }
                // The result is still a valid resource of its type.
                let valid = match rt.name() {
                    "User" => registry.decode::<User>(doc.clone()).map(|_| ()),
                    _ => registry.decode::<Group>(doc.clone()).map(|_| ()),
                };
                if let Err(e) = valid {
                    failures.push(format!("{comment}: result does not decode: {e}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn rfc7644_examples() {
    assert!(run_vectors("rfc") >= 20);
}

#[test]
fn identity_provider_payloads() {
    assert!(run_vectors("providers") >= 30);
}

#[test]
fn errors_leave_the_resource_unchanged() {
    assert!(run_vectors("errors") >= 20);
}

#[test]
fn every_rfc_patch_body_is_read() {
    let registry = Registry::core();
    let groups = registry.resource_type("Group").expect("Group");
    for case in json("vectors/rfc7644/patch-examples.json")
        .as_array()
        .expect("array")
    {
        let op: PatchOp = serde_json::from_value(case["body"].clone()).expect("PatchOp");
        let mut doc = json("vectors/rfc7643/group.json");
        // Bodies aimed at users are not group operations; each must still parse and
        // either apply or fail with a SCIM error, never panic.
        let _ = patch::apply(&groups, &mut doc, &op, &PatchOptions::default());
    }
}

#[test]
fn every_fixture_patch_applies_to_its_resource_type() {
    let registry = Registry::core();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patch");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    let providers = json("vectors/patch/providers.json");
    for name in names {
        let stem = name.trim_end_matches(".json");
        let covered = providers
            .as_array()
            .expect("array")
            .iter()
            .any(|c| c["patch"].as_str() == Some(stem));
        assert!(
            covered,
            "fixture {stem} has no case in vectors/patch/providers.json"
        );
    }
    let _ = registry;
}

#[test]
fn typed_users_and_groups_can_be_patched() {
    let registry = Registry::core();
    let mut user = User::new("ann@example.com");
    user.id = Some("1".into());
    let op = PatchOp::new(vec![
        PatchOperation::replace(Some("active"), json!("False")),
        PatchOperation::add(
            Some("emails[type eq \"work\"].value"),
            json!("ann@example.com"),
        ),
    ]);
    let outcome =
        patch::apply_to(&registry, &mut user, &op, &PatchOptions::default()).expect("applies");
    assert!(outcome.changed);
    assert_eq!(user.active, Some(false));
    assert_eq!(user.emails[0].kind.as_deref(), Some("work"));

    let mut group = Group::new("Ops");
    group.id = Some("g1".into());
    let op = PatchOp::new(vec![PatchOperation::add(
        Some("members"),
        json!(["a", "b", "a"]),
    )]);
    patch::apply_to(&registry, &mut group, &op, &PatchOptions::default()).expect("applies");
    let ids: Vec<_> = group
        .members
        .iter()
        .filter_map(|m| m.value.as_deref())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let err = patch::apply_to(
        &registry,
        &mut group,
        &PatchOp::new(vec![PatchOperation::remove("id")]),
        &PatchOptions::default(),
    )
    .expect_err("id is readOnly");
    assert_eq!(err.status(), 400);
}

#[test]
fn large_groups_take_member_changes_in_linear_time() {
    // Behaviour, not timing: 20,000 members, one add and one remove, exact result.
    let registry = Registry::core();
    let groups = registry.resource_type("Group").expect("Group");
    let members: Vec<Value> = (0..20_000)
        .map(|i| json!({"value": format!("u{i}")}))
        .collect();
    let mut group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Big", "members": members});
    let op = PatchOp::new(vec![
        PatchOperation::add(Some("members"), json!([{"value": "new"}])),
        PatchOperation::remove("members[value eq \"u500\"]"),
    ]);
    let outcome =
        patch::apply(&groups, &mut group, &op, &PatchOptions::default()).expect("applies");
    assert!(outcome.changed);
    let list = group["members"].as_array().expect("members");
    assert_eq!(list.len(), 20_000);
    assert_eq!(list.last(), Some(&json!({"value": "new"})));
    assert!(!list.contains(&json!({"value": "u500"})));
    // Replacing with a list that repeats itself keeps each member once.
    let repeated: Vec<Value> = (0..20_000)
        .map(|i| json!({"value": format!("u{}", i % 10_000)}))
        .collect();
    let op = PatchOp::new(vec![PatchOperation::replace(
        Some("members"),
        Value::Array(repeated),
    )]);
    patch::apply(&groups, &mut group, &op, &PatchOptions::default()).expect("applies");
    assert_eq!(group["members"].as_array().map(Vec::len), Some(10_000));
}

// ---- properties ----

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("userName".to_owned()),
        Just("displayName".to_owned()),
        Just("active".to_owned()),
        Just("id".to_owned()),
        Just("name.givenName".to_owned()),
        Just("name".to_owned()),
        Just("emails".to_owned()),
        Just("emails[type eq \"work\"].value".to_owned()),
        Just("emails[type eq \"work\"]".to_owned()),
        Just("emails[value co \"@\"].primary".to_owned()),
        Just("addresses[type eq \"home\"].locality".to_owned()),
        Just("groups".to_owned()),
        Just("meta.created".to_owned()),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager".to_owned()),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department".to_owned()),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned()),
        Just("x509Certificates".to_owned()),
        "[a-zA-Z\\[\\]. \"]{0,20}",
        "[a-zé日:.\\[\\]\" ]{0,12}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-zA-Z@. ]{0,10}".prop_map(Value::String),
        Just(json!("True")),
        Just(json!("work")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("value".to_owned()),
                    Just("type".to_owned()),
                    Just("primary".to_owned()),
                    Just("givenName".to_owned()),
                    Just("name.familyName".to_owned()),
                    Just("active".to_owned()),
                    Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned()),
                    Just("café".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_op() -> impl Strategy<Value = PatchOperation> {
    (
        proptest::sample::select(vec![
            scimkit::OpKind::Add,
            scimkit::OpKind::Remove,
            scimkit::OpKind::Replace,
        ]),
        proptest::option::of(arb_path()),
        proptest::option::of(arb_json()),
    )
        .prop_map(|(op, path, value)| PatchOperation { op, path, value })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_patches_never_panic_and_keep_users_valid(
        ops in proptest::collection::vec(arb_op(), 0..5),
        strict in any::<bool>(),
    ) {
        let registry = Registry::core();
        let users = registry.resource_type("User").expect("User");
        let original = json("vectors/rfc7643/enterprise-user.json");
        let mut doc = original.clone();
        let op = PatchOp::new(ops);
        let options = if strict { PatchOptions::strict() } else { PatchOptions::lenient() };
        match patch::apply(&users, &mut doc, &op, &options) {
            Ok(_) => {
                let decoded = registry.decode::<User>(doc.clone());
                prop_assert!(decoded.is_ok(), "{:?} on {} gave {:?}", op, doc, decoded.err());
            }
            Err(e) => {
                prop_assert_eq!(&doc, &original, "{}", e);
                prop_assert!(e.status() == 400 || e.status() == 413, "{}", e);
                prop_assert!(e.scim_type().is_some() || e.status() == 413, "{}", e);
            }
        }
    }
}

const POOL: &[&str] = &[
    "a@x",
    "A@X",
    "b@x",
    "c@x",
    "Äa@x",
    "äa@x",
    "\u{212A}@x",
    "k@x",
    "d",
];

fn arb_email_op() -> impl Strategy<Value = Value> {
    let v = proptest::sample::select(POOL);
    prop_oneof![
        8 => v.clone().prop_map(|v| json!({"op": "remove", "path": format!("emails[value eq {}]", json!(v))})),
        1 => v.clone().prop_map(|v| json!({"op": "remove", "path": format!("EMAILS[VALUE eq {}]", json!(v))})),
        1 => v.clone().prop_map(|v| json!({"op": "remove", "path": format!("emails[type eq {}]", json!(v))})),
        1 => v.clone().prop_map(|v| json!({"op": "remove", "path": format!("emails[value co {}]", json!(v))})),
        1 => v.clone().prop_map(|v| json!({"op": "add", "path": "emails", "value": [{"value": v}]})),
        1 => v.prop_map(|v| json!({"op": "replace", "path": "displayName", "value": v})),
        1 => Just(json!({"op": "remove", "path": "emails[value eq \"a@x\"].type"})),
    ]
}

fn arb_email_user() -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (
            proptest::sample::select(POOL),
            proptest::option::of(proptest::sample::select(&["work", "home"][..])),
        ),
        0..8,
    )
    .prop_map(|emails| {
        let emails: Vec<Value> = emails
            .into_iter()
            .map(|(v, t)| match t {
                Some(t) => json!({"value": v, "type": t}),
                None => json!({"value": v}),
            })
            .collect();
        let mut user =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u"});
        if !emails.is_empty() {
            user["emails"] = Value::Array(emails);
        }
        user
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Runs of keyed removals are applied in one pass; the outcome, and on failure
    /// the error and the operation it names, are those of applying the operations
    /// one at a time, and a failed PATCH leaves the resource exactly as it was.
    #[test]
    fn keyed_removal_runs_agree_with_one_at_a_time(
        user in arb_email_user(),
        ops in proptest::collection::vec(arb_email_op(), 1..12),
        strict in any::<bool>(),
    ) {
        let registry = Registry::core();
        let users = registry.resource_type("User").expect("User");
        let options = if strict { PatchOptions::strict() } else { PatchOptions::lenient() };
        let whole: PatchOp = serde_json::from_value(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})).expect("PatchOp");

        // One at a time: the model.
        let mut model = user.clone();
        let mut model_error = None;
        for (i, op) in whole.operations.iter().enumerate() {
            let single = PatchOp::new(vec![op.clone()]);
            match patch::apply(&users, &mut model, &single, &options) {
                Ok(_) => {}
                Err(e) => {
                    model_error = Some((i, e.scim_type()));
                    break;
                }
            }
        }

        let mut doc = user.clone();
        match (patch::apply(&users, &mut doc, &whole, &options), model_error) {
            (Ok(outcome), None) => {
                prop_assert_eq!(&doc, &model);
                prop_assert_eq!(outcome.changed, model != user);
            }
            (Err(e), Some((i, scim_type))) => {
                prop_assert_eq!(&doc, &user, "a failed PATCH changes nothing");
                prop_assert_eq!(e.scim_type(), scim_type);
                let prefix = format!("Operations[{i}] ");
                prop_assert!(e.detail().starts_with(&prefix), "{} should name Operations[{}]", e.detail(), i);
            }
            (got, want) => prop_assert!(false, "whole: {:?}, one at a time: {:?}", got, want),
        }
    }
}

const IDS: &[&str] = &["m1", "M1", "m2", "m3", "m4", "Ä5", "ä5"];

fn arb_member_op() -> impl Strategy<Value = Value> {
    let id = proptest::sample::select(IDS);
    let ids = proptest::collection::vec(id.clone(), 1..4);
    prop_oneof![
        4 => ids.clone().prop_map(|ids| json!({"op": "add", "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()})),
        2 => (id.clone(), proptest::sample::select(&["A", "B"][..])).prop_map(|(i, d)| json!({"op": "add", "path": "members", "value": [{"value": i, "display": d}]})),
        4 => id.clone().prop_map(|i| json!({"op": "remove", "path": format!("members[value eq \"{i}\"]")})),
        1 => id.clone().prop_map(|i| json!({"op": "remove", "path": format!("members[display eq \"A\" or value eq \"{i}\"]")})),
        1 => ids.clone().prop_map(|ids| json!({"op": "remove", "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()})),
        1 => ids.prop_map(|ids| json!({"op": "replace", "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()})),
        1 => id.clone().prop_map(|i| json!({"op": "replace", "path": format!("members[value eq \"{i}\"].display"), "value": "C"})),
        1 => Just(json!({"op": "replace", "path": "displayName", "value": "Renamed"})),
        1 => Just(json!({"op": "remove", "path": "members"})),
        // Fails: the whole PATCH must then leave the group exactly as it was.
        1 => Just(json!({"op": "replace", "path": "id", "value": "stolen"})),
        1 => Just(json!({"op": "add", "path": "members[value eq \"nobody\"].display", "value": "x"})),
    ]
}

fn arb_group() -> impl Strategy<Value = Value> {
    proptest::collection::vec((proptest::sample::select(IDS), proptest::option::of(proptest::sample::select(&["A", "B"][..]))), 0..6)
        .prop_map(|members| {
            let members: Vec<Value> = members
                .into_iter()
                .map(|(v, d)| match d {
                    Some(d) => json!({"value": v, "display": d}),
                    None => json!({"value": v}),
                })
                .collect();
            let mut g = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g", "displayName": "G"});
            if !members.is_empty() {
                g["members"] = Value::Array(members);
            }
            g
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// The undo journal (snapshots, and appends and removals recorded as such) undoes a
    /// failed PATCH exactly and reports `changed` exactly, whatever the mix of
    /// operations on one list.
    #[test]
    fn the_journal_rolls_back_exactly_and_knows_what_changed(
        group in arb_group(),
        ops in proptest::collection::vec(arb_member_op(), 1..8),
        strict in any::<bool>(),
    ) {
        let registry = Registry::core();
        let groups = registry.resource_type("Group").expect("Group");
        let options = if strict { PatchOptions::strict() } else { PatchOptions::lenient() };
        let op: PatchOp = serde_json::from_value(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})).expect("PatchOp");
        let mut doc = group.clone();
        match patch::apply(&groups, &mut doc, &op, &options) {
            Ok(outcome) => prop_assert_eq!(outcome.changed, doc != group, "{}", doc),
            Err(e) => prop_assert_eq!(&doc, &group, "{}", e),
        }
    }
}

/// Operations on a user's simple attributes and on `name`'s sub-attributes, which
/// the engine journals by moving the old value (not by copying the member), mixed
/// with operations on the same members that take the general path, and failures.
fn arb_user_op() -> impl Strategy<Value = Value> {
    let text = proptest::sample::select(&["Babs", "babs", "Jensen", ""][..]);
    let scalar = prop_oneof![
        text.clone().prop_map(Value::from),
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(7)),
    ];
    let op = proptest::sample::select(&["add", "replace", "remove"][..]);
    let path = proptest::sample::select(
        &[
            "userName",
            "displayName",
            "nickName",
            "active",
            "name.familyName",
            "name.givenName",
            "name.middleName",
            "name",
            "id",
            "meta.created",
        ][..],
    );
    prop_oneof![
        4 => (op, path, scalar).prop_map(|(op, path, value)| {
            if op == "remove" {
                json!({"op": op, "path": path})
            } else {
                json!({"op": op, "path": path, "value": value})
            }
        }),
        1 => text.clone().prop_map(|t| json!({"op": "replace", "path": "name", "value": {"givenName": t}})),
        1 => text.prop_map(|t| json!({"op": "replace", "value": {"active": false, "name": {"familyName": t}}})),
        4 => (
            proptest::sample::select(&["add", "replace"][..]),
            proptest::sample::select(&[r#"type eq "work""#, r#"type eq "home""#, r#"value eq "a@x""#, r#"primary eq true"#][..]),
            proptest::sample::select(&["value", "type", "primary", "display"][..]),
            prop_oneof![Just(json!("a@x")), Just(json!("work")), Just(json!(true)), Just(json!(false)), Just(Value::Null), Just(json!(3))],
        )
            .prop_map(|(op, filter, sub, value)| json!({"op": op, "path": format!("emails[{filter}].{sub}"), "value": value})),
        1 => Just(json!({"op": "add", "path": "emails", "value": [{"value": "c@x", "type": "work", "primary": true}]})),
        1 => Just(json!({"op": "remove", "path": "emails[type eq \"home\"]"})),
    ]
}

fn arb_user() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(proptest::sample::select(&["Barbara", "Babs"][..])),
        proptest::option::of(proptest::sample::select(&["Jensen", "jensen"][..])),
        proptest::option::of(any::<bool>()),
        any::<bool>(),
        proptest::collection::vec(
            (
                proptest::sample::select(&["a@x", "A@X", "b@x"][..]),
                proptest::option::of(proptest::sample::select(&["work", "home"][..])),
                proptest::option::of(any::<bool>()),
            ),
            0..4,
        ),
    )
        .prop_flat_map(|parts| (Just(parts), any::<bool>()))
        .prop_map(|((given, family, active, nick, emails), empties)| {
            let mut u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "u", "userName": "bjensen"});
            let mut name = serde_json::Map::new();
            if let Some(g) = given {
                name.insert("givenName".into(), json!(g));
            }
            if let Some(f) = family {
                name.insert("familyName".into(), json!(f));
            }
            // Empty members (null, `{}`, `[]`) are what a failed operation must not
            // tidy away unrecorded.
            if !name.is_empty() || empties {
                u["name"] = Value::Object(name);
            }
            if let Some(a) = active {
                u["active"] = json!(a);
            }
            if nick {
                u["nickName"] = json!("Babs");
            } else if empties {
                u["nickName"] = Value::Null;
            }
            if !emails.is_empty() || empties {
                let emails: Vec<Value> = emails
                    .into_iter()
                    .map(|(value, kind, primary)| {
                        let mut e = json!({"value": value});
                        if let Some(k) = kind {
                            e["type"] = json!(k);
                        }
                        if let Some(p) = primary {
                            e["primary"] = json!(p);
                        }
                        e
                    })
                    .collect();
                u["emails"] = Value::Array(emails);
            }
            u
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Replacements journaled by moving the old value undo a failed PATCH exactly
    /// and report `changed` exactly, mixed in any order with snapshots of the same
    /// members.
    #[test]
    fn moved_replacements_roll_back_exactly_and_know_what_changed(
        user in arb_user(),
        ops in proptest::collection::vec(arb_user_op(), 1..8),
        strict in any::<bool>(),
    ) {
        let registry = Registry::core();
        let users = registry.resource_type("User").expect("User");
        let options = if strict { PatchOptions::strict() } else { PatchOptions::lenient() };
        let op: PatchOp = serde_json::from_value(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})).expect("PatchOp");
        let mut doc = user.clone();
        match patch::apply(&users, &mut doc, &op, &options) {
            Ok(outcome) => prop_assert_eq!(outcome.changed, doc != user, "{}", doc),
            Err(e) => prop_assert_eq!(&doc, &user, "{}", e),
        }
    }
}
