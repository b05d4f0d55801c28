//! `{"op":"add","path":"meta","value":{"x":"spoof"}}` stored `x` inside `meta`, and
//! every response carried it. Nothing a client sends may land inside a readOnly
//! attribute: 400 `mutability`, and the resource is unchanged.

use scimkit::patch::{self, PatchOptions};
use scimkit::service::Request;
use scimkit::{PatchOp, Registry};
use serde_json::json;

#[test]
fn unknown_sub_attributes_of_meta_are_refused() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let original = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "1", "userName": "a",
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"}
    });
    for ops in [
        json!([{"op": "add", "path": "meta", "value": {"x": "spoof"}}]),
        json!([{"op": "replace", "path": "meta", "value": {"x": "spoof"}}]),
        json!([{"op": "add", "value": {"meta": {"x": "spoof"}}}]),
        json!([{"op": "replace", "value": {"meta": {"resourceType": "User", "x": "spoof"}}}]),
        json!([{"op": "add", "path": "meta", "value": {"created": "2024-01-01T00:00:00Z", "location": "https://evil.example/"}}]),
    ] {
        for options in [PatchOptions::lenient(), PatchOptions::strict()] {
            let mut user = original.clone();
            let op: PatchOp =
                serde_json::from_value(super::patch_op(ops.clone())).expect("PatchOp");
            let err = patch::apply(&users, &mut user, &op, &options).unwrap_err();
            assert_eq!(
                err.scim_type(),
                Some(scimkit::ScimType::Mutability),
                "{ops}: {}",
                err.detail()
            );
            assert_eq!(user, original, "{ops}");
        }
    }
    // Writing what is already there changes nothing and is no error.
    let mut user = original.clone();
    let op: PatchOp = serde_json::from_value(super::patch_op(
        json!([{"op": "add", "path": "meta", "value": {"resourceType": "User"}}]),
    ))
    .expect("PatchOp");
    let outcome = patch::apply(&users, &mut user, &op, &PatchOptions::default()).expect("no-op");
    assert!(!outcome.changed);
}

#[test]
fn through_the_service_meta_stays_the_servers() {
    let svc = super::service();
    let id = super::create_user(&svc, json!({"userName": "a", "meta": {"x": "spoof"}}));
    let patch = super::patch_op(json!([{"op": "add", "path": "meta", "value": {"x": "spoof"}}]));
    let (status, body) = super::call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&patch),
    );
    assert_eq!(
        (status, body["scimType"].clone()),
        (400, json!("mutability")),
        "{body}"
    );
    let (_, user) = super::call(&svc, Request::new("GET", &format!("/Users/{id}")));
    assert!(user["meta"].get("x").is_none(), "{user}");
}
