//! `{"op":"replace","path":"members[value eq \"nobody\"]","value":{"value":"nobody"}}`
//! on a group where nothing matched answered 200 and added a member "nobody". RFC 7644
//! §3.5.2.3: a filter that matches nothing is 400 `noTarget`. The lenient creation
//! of a value from its filter (Entra's `emails[type eq "work"].value`) never applies
//! to a filter on the value's identity.

use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry, ScimType};
use serde_json::json;

#[test]
fn an_identity_filter_that_matches_nothing_is_no_target() {
    let registry = Registry::core();
    let groups = registry.resource_type("Group").expect("Group");
    let users = registry.resource_type("User").expect("User");
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"value": "u1"}]});
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "emails": [{"value": "a@x", "type": "home"}]});
    let cases = [
        (
            &groups,
            &group,
            json!({"op": "replace", "path": "members[value eq \"nobody\"]", "value": {"value": "nobody"}}),
        ),
        (
            &groups,
            &group,
            json!({"op": "add", "path": "members[value eq \"nobody\"]", "value": {"value": "nobody"}}),
        ),
        (
            &groups,
            &group,
            json!({"op": "replace", "path": "members[value eq \"nobody\"].display", "value": "No Body"}),
        ),
        (
            &users,
            &user,
            json!({"op": "replace", "path": "emails[value eq \"b@x\"].type", "value": "work"}),
        ),
        (
            &users,
            &user,
            json!({"op": "add", "path": "emails[value eq \"b@x\" and type eq \"work\"]", "value": {"primary": true}}),
        ),
    ];
    for (rt, resource, op) in cases {
        for options in [PatchOptions::lenient(), PatchOptions::strict()] {
            let mut doc = resource.clone();
            let patch: PatchOp =
                serde_json::from_value(super::patch_op(json!([op.clone()]))).expect("PatchOp");
            let err = patch::apply(rt, &mut doc, &patch, &options).unwrap_err();
            assert_eq!(
                err.scim_type(),
                Some(ScimType::NoTarget),
                "{op}: {}",
                err.detail()
            );
            assert_eq!(&doc, resource, "{op}");
        }
    }
    // A filter on a classifier still names a slot to fill (Entra ID).
    let mut doc = user.clone();
    let patch: PatchOp = serde_json::from_value(super::patch_op(json!([
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@work"}
    ])))
    .expect("PatchOp");
    patch::apply(&users, &mut doc, &patch, &PatchOptions::lenient()).expect("creates");
    assert_eq!(doc["emails"][1], json!({"type": "work", "value": "a@work"}));
}
