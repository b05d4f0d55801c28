//! A path-less PATCH value whose key has a multi-byte character at byte 4 panicked
//! while checking for a `urn:` prefix.

use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry};
use serde_json::json;

#[test]
fn non_ascii_keys_are_handled_without_panicking() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    for key in [
        "café",
        "urn\u{e9}x",
        "ürn:x:y",
        "日本語の属性",
        "a\u{301}bc",
    ] {
        let mut user =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
        let op: PatchOp = serde_json::from_value(super::patch_op(
            json!([{"op": "replace", "value": {key: "x"}}]),
        ))
        .expect("PatchOp");
        let strict = patch::apply(&users, &mut user.clone(), &op, &PatchOptions::strict());
        assert!(strict.is_err(), "{key}");
        let _ = patch::apply(&users, &mut user, &op, &PatchOptions::default());
        assert!(users.resolve(key).is_none());
    }
}
