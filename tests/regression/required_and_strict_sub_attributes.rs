//! Replacing a required attribute with null got past the engine, and strict mode
//! kept sub-attributes the schema does not define.

use scimkit::ScimType;
use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry};
use serde_json::json;

#[test]
fn the_engine_enforces_required_and_strict_sub_attributes() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let mut user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "name": {"givenName": "A"}});
    let op: PatchOp = serde_json::from_value(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"userName": null}}]})).expect("PatchOp");
    let err = patch::apply(&users, &mut user, &op, &PatchOptions::default())
        .expect_err("userName is required");
    // RFC 7644 §3.5.2.2: a required attribute that becomes unassigned is `mutability`.
    assert_eq!(err.scim_type(), Some(ScimType::Mutability));
    assert_eq!(user["userName"], "a");

    let op: PatchOp = serde_json::from_value(super::patch_op(
        json!([{"op": "add", "path": "name", "value": {"bogus": 1}}]),
    ))
    .expect("PatchOp");
    let err = patch::apply(&users, &mut user, &op, &PatchOptions::strict()).expect_err("strict");
    assert_eq!(err.scim_type(), Some(ScimType::InvalidPath));
    patch::apply(&users, &mut user, &op, &PatchOptions::lenient()).expect("lenient keeps it");
    assert_eq!(user["name"], json!({"givenName": "A", "bogus": 1}));
}
