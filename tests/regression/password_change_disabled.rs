//! With `change_password` off (as advertised in ServiceProviderConfig), PUT and PATCH
//! still changed the password.

use scimkit::ScimType;
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use serde_json::json;

#[test]
fn password_changes_are_refused_when_not_supported() {
    let mut config = ServiceConfig::default();
    config.change_password = false;
    let svc = Service::new(MemoryStore::<()>::new(), config);
    let (_, spc) = super::call(&svc, Request::new("GET", "/ServiceProviderConfig"));
    assert_eq!(spc["changePassword"]["supported"], false);
    // An initial password at creation is not a change.
    let id = super::create_user(
        &svc,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "password": "first"}),
    );
    let op = super::patch_op(json!([{"op": "replace", "path": "password", "value": "second"}]));
    let (status, err) = super::call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&op),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["scimType"], ScimType::Mutability.as_str());
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "password": "third"});
    let (status, _) = super::call(
        &svc,
        Request::new("PUT", &format!("/Users/{id}")).with_json(&put),
    );
    assert_eq!(status, 400);
    // A PUT without a password keeps the stored one and succeeds.
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "nickName": "n"});
    let (status, _) = super::call(
        &svc,
        Request::new("PUT", &format!("/Users/{id}")).with_json(&put),
    );
    assert_eq!(status, 200);
}
