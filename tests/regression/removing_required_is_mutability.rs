//! `{"op":"remove","path":"userName"}` answered `invalidValue`. RFC 7644 §3.5.2.2: an
//! attribute that is removed or becomes unassigned and is required (or read-only)
//! SHALL get scimType `mutability`.

use scimkit::service::Request;
use serde_json::json;

#[test]
fn removing_or_unassigning_user_name_is_mutability() {
    let svc = super::service();
    let id = super::create_user(&svc, json!({"userName": "a", "emails": [{"value": "a@x"}]}));
    for ops in [
        json!([{"op": "remove", "path": "userName"}]),
        json!([{"op": "remove", "path": "USERNAME"}]),
        json!([{"op": "replace", "path": "userName", "value": null}]),
        json!([{"op": "replace", "value": {"userName": null}}]),
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName"}]),
    ] {
        let (status, body) = super::call(
            &svc,
            Request::new("PATCH", &format!("/Users/{id}")).with_json(&super::patch_op(ops.clone())),
        );
        assert_eq!(
            (status, body["scimType"].clone()),
            (400, json!("mutability")),
            "{ops}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap_or("").contains("userName"),
            "{body}"
        );
    }
    let (_, user) = super::call(&svc, Request::new("GET", &format!("/Users/{id}")));
    assert_eq!(user["userName"], "a");
    // Removing what is not required is fine.
    let (status, _) = super::call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&super::patch_op(
            json!([{"op": "remove", "path": "emails"}]),
        )),
    );
    assert_eq!(status, 200);
}
