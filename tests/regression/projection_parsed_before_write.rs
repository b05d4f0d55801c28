//! POST with a malformed `attributes` created the user and then answered 400, so the
//! client's retry met 409.

use scimkit::service::Request;
use serde_json::json;

#[test]
fn a_bad_projection_is_refused_before_anything_is_written() {
    let svc = super::service();
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
    let (status, err) = super::call(
        &svc,
        Request::new("POST", "/Users?attributes=emails%5Btype").with_json(&body),
    );
    assert_eq!(status, 400, "{err}");
    let (_, list) = super::call(&svc, Request::new("GET", "/Users"));
    assert_eq!(list["totalResults"], 0);
    let id = super::create_user(&svc, body);
    let op = super::patch_op(json!([{"op": "replace", "path": "nickName", "value": "x"}]));
    let (status, _) = super::call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}?excludedAttributes=1x")).with_json(&op),
    );
    assert_eq!(status, 400);
    let (_, user) = super::call(&svc, Request::new("GET", &format!("/Users/{id}")));
    assert!(user.get("nickName").is_none());
}
