//! `members[value eq "x"].display` was refused as a PATCH path (invalidPath) while
//! `display` inside member values was kept. Okta and Entra ID send `display`; the
//! Group schema now defines it, so both forms work and `/Schemas` says so.

use scimkit::service::Request;
use serde_json::json;

#[test]
fn display_can_be_set_by_path_and_by_value() {
    let svc = super::service();
    let user = super::create_user(&svc, json!({"userName": "ann"}));
    let group = json!({"displayName": "G", "members": [{"value": user, "display": "Ann"}]});
    let (status, created) = super::call(&svc, Request::new("POST", "/Groups").with_json(&group));
    assert_eq!(status, 201, "{created}");
    let gid = created["id"].as_str().expect("id");
    let path = format!("members[value eq \"{user}\"].display");
    for (op, display) in [("replace", "Ann Lee"), ("add", "Ann L.")] {
        let ops = json!([{"op": op, "path": path, "value": display}]);
        let (status, body) = super::call(
            &svc,
            Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&super::patch_op(ops)),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["members"],
            json!([{"value": user, "display": display}])
        );
    }
    let ops = json!([{"op": "remove", "path": path}]);
    let (status, body) = super::call(
        &svc,
        Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&super::patch_op(ops)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members"], json!([{"value": user}]));
    let (_, schema) = super::call(
        &svc,
        Request::new(
            "GET",
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group",
        ),
    );
    assert!(
        schema.to_string().contains("\"name\":\"display\""),
        "{schema}"
    );
}
