//! A lenient `replace` on `emails[type eq "work"]` with no work email created a value
//! without `type`: the filter's fields were overwritten.

use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry};
use serde_json::json;

#[test]
fn a_created_value_keeps_what_the_filter_says() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let mut user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "emails": [{"value": "h@home.org", "type": "home"}]});
    let op: PatchOp = serde_json::from_value(super::patch_op(json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "a@b.example"}}]))).expect("PatchOp");
    patch::apply(&users, &mut user, &op, &PatchOptions::default()).expect("applies");
    assert_eq!(
        user["emails"],
        json!([{"value": "h@home.org", "type": "home"}, {"type": "work", "value": "a@b.example"}])
    );
}
