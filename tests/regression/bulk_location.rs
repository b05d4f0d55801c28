//! Successful bulk PUT, PATCH and DELETE lacked `location` (RFC 7644 §3.7.3).

use scimkit::service::Request;
use serde_json::json;

#[test]
fn every_successful_bulk_operation_names_its_resource() {
    let svc = super::service();
    let id = super::create_user(
        &svc,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}),
    );
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": format!("/Users/{id}"), "data": super::patch_op(json!([{"op": "replace", "path": "active", "value": false}]))},
            {"method": "PUT", "path": format!("/Users/{id}"), "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}},
            {"method": "DELETE", "path": format!("/Users/{id}")}
        ]
    });
    let (status, resp) = super::call(&svc, Request::new("POST", "/Bulk").with_json(&bulk));
    assert_eq!(status, 200);
    for op in resp["Operations"].as_array().expect("Operations") {
        assert!(
            op["status"].as_str().is_some_and(|s| s.starts_with('2')),
            "{op}"
        );
        assert_eq!(op["location"], json!(format!("/Users/{id}")), "{op}");
    }
}
