//! A value filter let a PATCH write a readOnly attribute (`groups[...]`) and replace a
//! whole member, changing its immutable `value`.

use scimkit::ScimType;
use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry};
use serde_json::json;

#[test]
fn read_only_and_immutable_hold_under_value_filters() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let groups = registry.resource_type("Group").expect("Group");
    for options in [PatchOptions::lenient(), PatchOptions::strict()] {
        let mut user =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
        let op: PatchOp = serde_json::from_value(super::patch_op(
            json!([{"op": "add", "path": "groups[value eq \"admins\"]", "value": {}}]),
        ))
        .expect("PatchOp");
        let err = patch::apply(&users, &mut user, &op, &options).expect_err("groups is readOnly");
        assert_eq!(err.scim_type(), Some(ScimType::Mutability));
        assert!(user.get("groups").is_none());

        let mut group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"value": "u1"}]});
        let op: PatchOp = serde_json::from_value(super::patch_op(json!([{"op": "replace", "path": "members[value eq \"u1\"]", "value": {"value": "u2"}}]))).expect("PatchOp");
        let err = patch::apply(&groups, &mut group, &op, &options)
            .expect_err("members.value is immutable");
        assert_eq!(err.scim_type(), Some(ScimType::Mutability));
        assert_eq!(group["members"], json!([{"value": "u1"}]));
        // Replacing a member with itself plus a display is fine.
        let op: PatchOp = serde_json::from_value(super::patch_op(json!([{"op": "replace", "path": "members[value eq \"u1\"]", "value": {"value": "u1", "display": "One"}}]))).expect("PatchOp");
        if options.is_lenient() {
            patch::apply(&groups, &mut group, &op, &options).expect("same value");
            assert_eq!(group["members"], json!([{"value": "u1", "display": "One"}]));
        }
    }
}
