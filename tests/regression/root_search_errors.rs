//! Root `/.search` skipped resource types whose filter check failed and answered 200
//! with nothing, instead of the error.

use scimkit::service::Request;
use serde_json::json;

#[test]
fn root_search_reports_invalid_filters_and_sorts_across_types() {
    let svc = super::service();
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "active co \"x\""});
    let (status, err) = super::call(&svc, Request::new("POST", "/.search").with_json(&search));
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["scimType"], "invalidFilter");

    super::create_user(
        &svc,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "m", "displayName": "Mike"}),
    );
    super::call(&svc, Request::new("POST", "/Groups").with_json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Alpha"})));
    super::call(&svc, Request::new("POST", "/Groups").with_json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Zulu"})));
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName pr", "sortBy": "displayName"});
    let (status, found) = super::call(&svc, Request::new("POST", "/.search").with_json(&search));
    assert_eq!(status, 200, "{found}");
    let names: Vec<&str> = found["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .filter_map(|r| r["displayName"].as_str())
        .collect();
    assert_eq!(names, ["Alpha", "Mike", "Zulu"]);
}
