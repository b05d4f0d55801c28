//! `GET /Users?filter=password sw "Hu"` answered totalResults 1 (then 0 for "Hx"), so
//! any token holder could recover a password one character at a time; `sortBy=password`
//! leaked it through the order of results. A never-returned attribute may not be used
//! in a filter, in `sortBy`, or in a PATCH path's value filter.

use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit::patch::{self, PatchOptions};
use scimkit::schema::{Attribute, AttributeType, ResourceType, Returned, Schema};
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use serde_json::json;

fn encoded(filter: &str) -> String {
    url::form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

#[test]
fn filters_on_password_are_refused() {
    let svc = super::service();
    super::create_user(&svc, json!({"userName": "bjensen", "password": "Hunter2"}));
    for filter in [
        r#"password sw "Hu""#,
        r#"password sw "Hx""#,
        r#"password eq "Hunter2""#,
        r#"password gt "A""#,
        "password pr",
        r#"PASSWORD co "unt""#,
        r#"userName pr and not (password ew "2")"#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:password sw "H""#,
    ] {
        let (status, body) = super::call(
            &svc,
            Request::new(
                "GET",
                &format!("/Users?filter={}&attributes=userName", encoded(filter)),
            ),
        );
        assert_eq!(status, 400, "{filter}: {body}");
        assert_eq!(body["scimType"], "invalidFilter", "{filter}");
        assert!(
            body["detail"].as_str().unwrap_or("").contains("'password'"),
            "{filter}: {body}"
        );
        let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter});
        let (status, body) = super::call(
            &svc,
            Request::new("POST", "/Users/.search").with_json(&search),
        );
        assert_eq!(
            (status, body["scimType"].clone()),
            (400, json!("invalidFilter")),
            "{body}"
        );
        let (status, _) = super::call(&svc, Request::new("POST", "/.search").with_json(&search));
        assert_eq!(status, 400);
    }
}

#[test]
fn sorting_by_password_is_refused() {
    let svc = super::service();
    super::create_user(&svc, json!({"userName": "a", "password": "Zzz"}));
    super::create_user(&svc, json!({"userName": "b", "password": "Aaa"}));
    for sort in [
        "password",
        "Password",
        "urn:ietf:params:scim:schemas:core:2.0:User:password",
    ] {
        let (status, body) =
            super::call(&svc, Request::new("GET", &format!("/Users?sortBy={sort}")));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["scimType"], "invalidValue");
        assert!(
            body["detail"].as_str().unwrap_or("").contains("password"),
            "{body}"
        );
        let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "sortBy": sort});
        let (status, body) = super::call(&svc, Request::new("POST", "/.search").with_json(&search));
        assert_eq!(
            (status, body["scimType"].clone()),
            (400, json!("invalidValue")),
            "{body}"
        );
    }
}

#[test]
fn evaluation_and_sorting_never_read_a_secret() {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let user = json!({"userName": "a", "password": "Hunter2"});
    let filter: Filter = r#"password sw "Hu""#.parse().expect("parses");
    assert!(!filter.matches(&users, &user));
}

/// A host schema with a never-returned sub-attribute inside a multi-valued complex one.
fn registry_with_secret_sub_attribute() -> Registry {
    let mut registry = Registry::empty();
    registry.add_schema(Schema::new(
        "urn:example:scim:Device",
        "Device",
        vec![
            Attribute::new("name", AttributeType::String),
            Attribute::complex(
                "keys",
                vec![
                    Attribute::new("value", AttributeType::String),
                    Attribute::new("secret", AttributeType::String).with_returned(Returned::Never),
                ],
            )
            .with_multi_valued(true),
        ],
    ));
    registry
        .add_resource_type(ResourceType::new(
            "Device",
            "/Devices",
            "urn:example:scim:Device",
        ))
        .expect("registers");
    registry
}

#[test]
fn patch_value_filters_on_secrets_are_refused() {
    let registry = registry_with_secret_sub_attribute();
    let devices = registry.resource_type("Device").expect("Device");
    let mut device = json!({"schemas": ["urn:example:scim:Device"], "name": "d", "keys": [{"value": "k1", "secret": "s3cr3t"}]});
    let before = device.clone();
    let op = serde_json::from_value(super::patch_op(json!([
        {"op": "remove", "path": "keys[secret sw \"s3\"]"}
    ])))
    .expect("PatchOp");
    let err = patch::apply(&devices, &mut device, &op, &PatchOptions::default()).unwrap_err();
    assert_eq!(err.scim_type(), Some(scimkit::ScimType::InvalidFilter));
    assert!(err.detail().contains("secret"), "{}", err.detail());
    assert_eq!(device, before);

    // Through the service, with the list filter too.
    let svc = Service::new(MemoryStore::<()>::new(), ServiceConfig::default())
        .with_registry(registry_with_secret_sub_attribute());
    let (status, created) = super::call(
        &svc,
        Request::new("POST", "/Devices").with_json(&json!({"schemas": ["urn:example:scim:Device"], "name": "d", "keys": [{"value": "k1", "secret": "s3cr3t"}]})),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let patch = super::patch_op(
        json!([{"op": "replace", "path": "keys[secret eq \"s3cr3t\"].value", "value": "k2"}]),
    );
    let filters = [r#"keys[secret sw "s"]"#, r#"keys.secret sw "s""#];
    let requests =
        std::iter::once(Request::new("PATCH", &format!("/Devices/{id}")).with_json(&patch)).chain(
            filters
                .iter()
                .map(|f| Request::new("GET", &format!("/Devices?filter={}", encoded(f)))),
        );
    for req in requests {
        let (status, body) = super::call(&svc, req);
        assert_eq!(
            (status, body["scimType"].clone()),
            (400, json!("invalidFilter")),
            "{body}"
        );
    }
}
