//! A member-only PATCH with several entity tags in `If-Match` answered 412 although
//! one of them matched.

use scimkit::service::Request;
use serde_json::json;

#[test]
fn any_matching_tag_is_enough() {
    let svc = super::service();
    let (_, g) = super::call(&svc, Request::new("POST", "/Groups").with_json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"})));
    let gid = g["id"].as_str().expect("id");
    let uid = super::create_user(&svc, json!({"userName": "u1"}));
    let op = super::patch_op(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]));
    let req = Request::new("PATCH", &format!("/Groups/{gid}"))
        .with_json(&op)
        .with_header("If-Match", "W/\"7\", W/\"1\"");
    let (status, body) = super::call(&svc, req);
    assert_eq!(status, 200, "{body}");
    let req = Request::new("PATCH", &format!("/Groups/{gid}"))
        .with_json(&op)
        .with_header("If-Match", "W/\"7\", W/\"8\"");
    assert_eq!(super::call(&svc, req).0, 412);
}
