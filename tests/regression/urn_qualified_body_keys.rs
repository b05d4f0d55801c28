//! `{"userName":"u","urn:ietf:params:scim:schemas:core:2.0:User:password":"Secr3t"}`
//! was stored as an unknown attribute and echoed back in clear text. RFC 7644 §3.10
//! allows the URN-qualified name wherever an attribute is named; normalisation now
//! resolves it, so `returned`, `mutability`, uniqueness and types apply to it.

use scimkit::service::Request;
use scimkit::store::{MemoryStore, Projection, Store};
use scimkit::{Registry, User};
use serde_json::{Value, json};

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn mentions_secret(v: &Value) -> bool {
    v.to_string().contains("Secr3t")
}

#[test]
fn a_qualified_password_is_a_password() {
    let svc = super::service();
    let body = json!({"userName": "u", format!("{CORE}:password"): "Secr3t"});
    let (status, created) = super::call(&svc, Request::new("POST", "/Users").with_json(&body));
    assert_eq!(status, 201, "{created}");
    assert!(!mentions_secret(&created), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, got) = super::call(&svc, Request::new("GET", &format!("/Users/{id}")));
    assert!(!mentions_secret(&got), "{got}");
    let (_, list) = super::call(&svc, Request::new("GET", "/Users"));
    assert!(!mentions_secret(&list), "{list}");
    // Stored as the password, where the write-only rules apply.
    let store: &MemoryStore<()> = svc.store();
    let record = super::block_on(store.get(&(), "User", &id, &Projection::all())).expect("stored");
    assert_eq!(record.resource["password"], "Secr3t");
    assert!(record.resource.get(format!("{CORE}:password")).is_none());

    // PUT with the qualified form: kept as the password, never echoed.
    let put = json!({"userName": "u", format!("{CORE}:password"): "Secr3t-2"});
    let (status, replaced) = super::call(
        &svc,
        Request::new("PUT", &format!("/Users/{id}")).with_json(&put),
    );
    assert_eq!(status, 200, "{replaced}");
    assert!(!replaced.to_string().contains("Secr3t"), "{replaced}");
    let record = super::block_on(store.get(&(), "User", &id, &Projection::all())).expect("stored");
    assert_eq!(record.resource["password"], "Secr3t-2");
}

#[test]
fn qualified_keys_follow_every_rule_of_the_short_form() {
    let svc = super::service();
    let body = json!({
        format!("{CORE}:userName"): "Ann@Example.com",
        format!("{CORE}:active"): "False",
        format!("{CORE}:name.givenName"): "Ann",
        "name": {"familyName": "Lee"},
        format!("{CORE}:id"): "chosen-by-client",
        format!("{ENT}:employeeNumber"): "701984",
        ENT: {"department": "Tour Operations"}
    });
    let (status, user) = super::call(&svc, Request::new("POST", "/Users").with_json(&body));
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["userName"], "Ann@Example.com");
    assert_eq!(user["active"], false);
    assert_eq!(
        user["name"],
        json!({"givenName": "Ann", "familyName": "Lee"})
    );
    assert_ne!(user["id"], "chosen-by-client");
    assert_eq!(
        user[ENT],
        json!({"employeeNumber": "701984", "department": "Tour Operations"})
    );
    assert!(
        user["schemas"]
            .as_array()
            .expect("schemas")
            .contains(&json!(ENT))
    );
    let qualified_keys: Vec<&String> = user
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| k.starts_with("urn:") && k.as_str() != ENT)
        .collect();
    assert!(qualified_keys.is_empty(), "{qualified_keys:?}");

    // userName given qualified is unique like the short form, case-insensitively.
    let again = json!({format!("{CORE}:userName"): "ann@example.com"});
    let (status, body) = super::call(&svc, Request::new("POST", "/Users").with_json(&again));
    assert_eq!(
        (status, body["scimType"].clone()),
        (409, json!("uniqueness")),
        "{body}"
    );
}

#[test]
fn the_same_attribute_twice_with_different_values_is_refused() {
    let svc = super::service();
    let body = json!({"userName": "a", format!("{CORE}:userName"): "b"});
    let (status, body) = super::call(&svc, Request::new("POST", "/Users").with_json(&body));
    assert_eq!(
        (status, body["scimType"].clone()),
        (400, json!("invalidValue")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap_or("").contains("userName"),
        "{body}"
    );
    let (_, list) = super::call(&svc, Request::new("GET", "/Users"));
    assert_eq!(list["totalResults"], 0);
    // Agreeing values are one attribute.
    let body = json!({"userName": "a", format!("{CORE}:userName"): "a"});
    let (status, _) = super::call(&svc, Request::new("POST", "/Users").with_json(&body));
    assert_eq!(status, 201);
}

#[test]
fn typed_decoding_reads_qualified_keys() {
    let body = json!({format!("{CORE}:userName"): "u", format!("{CORE}:password"): "Secr3t"});
    let user: User = Registry::core().decode(body).expect("decodes");
    assert_eq!(user.user_name.as_deref(), Some("u"));
    assert!(user.password.is_some());
    assert!(user.extensions.is_empty(), "{:?}", user.extensions);
}
