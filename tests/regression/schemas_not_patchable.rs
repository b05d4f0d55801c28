//! `{"op": "replace", "path": "schemas", "value": []}` emptied the resource's schemas.

use scimkit::service::Request;
use serde_json::json;

#[test]
fn schemas_is_kept_by_the_server() {
    let svc = super::service();
    let id = super::create_user(
        &svc,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}),
    );
    for value in [
        json!([]),
        json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]),
    ] {
        let op = super::patch_op(json!([{"op": "replace", "path": "schemas", "value": value}]));
        let (status, user) = super::call(
            &svc,
            Request::new("PATCH", &format!("/Users/{id}")).with_json(&op),
        );
        assert_eq!(status, 200, "{user}");
        assert_eq!(
            user["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
        assert_eq!(user["meta"]["version"], "W/\"1\"", "nothing changed");
    }
}
