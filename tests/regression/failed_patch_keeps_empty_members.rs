//! An operation that failed (or had nothing to do) after the engine had tidied away an
//! empty member left the resource without it: `{"nickName": null}` lost `nickName`
//! when `replace nickName` with an object was refused, and `{"name": {}}` lost
//! `name`. A failed PATCH must leave the resource exactly as it was, and a PATCH that
//! drops an empty member has changed the resource.

use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry};
use serde_json::{Value, json};

fn op(ops: Value) -> PatchOp {
    serde_json::from_value(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
    )
    .expect("PatchOp")
}

#[test]
fn a_failed_patch_keeps_empty_members() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    for options in [PatchOptions::strict(), PatchOptions::lenient()] {
        for (resource, ops) in [
            (
                json!({"userName": "bjensen", "nickName": null}),
                json!([{"op": "replace", "path": "nickName", "value": {"x": 1}}]),
            ),
            (
                json!({"userName": "bjensen", "name": {}}),
                json!([{"op": "replace", "path": "name.familyName", "value": {"x": 1}}]),
            ),
            (
                json!({"userName": "bjensen", "nickName": null}),
                json!([
                    {"op": "add", "path": "nickName", "value": null},
                    {"op": "replace", "path": "id", "value": "x"}
                ]),
            ),
            (
                json!({"userName": "bjensen", "emails": []}),
                json!([
                    {"op": "remove", "path": "emails[value eq \"nobody\"]"},
                    {"op": "replace", "path": "id", "value": "x"}
                ]),
            ),
        ] {
            let mut doc = resource.clone();
            let result = patch::apply(&users, &mut doc, &op(ops.clone()), &options);
            assert!(result.is_err(), "{ops} should fail");
            assert_eq!(doc, resource, "{ops}");
        }
    }
}

#[test]
fn dropping_an_empty_member_is_a_change() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let resource = json!({"userName": "bjensen", "nickName": null});
    let mut doc = resource.clone();
    let outcome = patch::apply(
        &users,
        &mut doc,
        &op(json!([{"op": "add", "path": "nickName", "value": null}])),
        &PatchOptions::default(),
    )
    .expect("applies");
    assert_eq!(outcome.changed, doc != resource, "{doc}");
}
