//! An 800 KB POST of `"emails":["a", … 200,000 times]` answered 201 and took the
//! process from 19 MB to 303 MB; lists of such users peaked at 909 MB. What one
//! resource may hold is now bounded: values per multi-valued attribute
//! (`max_values`), members per group (`max_members`) and bytes (`max_resource_bytes`).
//! Past a limit the answer names the attribute and the limit, and nothing is stored.

use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use serde_json::{Value, json};

type Svc = Service<MemoryStore<()>>;

fn call(svc: &Svc, req: Request) -> (u16, Value) {
    let resp = super::block_on(svc.handle(&(), req));
    (resp.status, resp.json_body().unwrap_or(Value::Null))
}

fn total(svc: &Svc, endpoint: &str) -> Value {
    call(svc, Request::new("GET", endpoint)).1["totalResults"].clone()
}

#[test]
fn two_hundred_thousand_emails_are_refused() {
    let svc = super::service();
    let emails = vec![json!("a"); 200_000];
    let body = json!({"userName": "bomb", "emails": emails});
    assert!(body.to_string().len() < 1024 * 1024);
    let (status, err) = call(&svc, Request::new("POST", "/Users").with_json(&body));
    assert_eq!(
        (status, err["scimType"].clone()),
        (400, json!("invalidValue")),
        "{err}"
    );
    let detail = err["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("'emails'") && detail.contains("1000"),
        "{detail}"
    );
    assert_eq!(total(&svc, "/Users"), 0);
}

#[test]
fn values_per_attribute_are_bounded_on_every_write() {
    let svc = super::service();
    let emails = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"value": format!("u{i}@x")}))
            .collect()
    };
    let (status, user) = call(
        &svc,
        Request::new("POST", "/Users")
            .with_json(&json!({"userName": "a", "emails": emails(1_000)})),
    );
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_owned();
    let (status, err) = call(
        &svc,
        Request::new("POST", "/Users")
            .with_json(&json!({"userName": "b", "emails": emails(1_001)})),
    );
    assert_eq!(
        (status, err["scimType"].clone()),
        (400, json!("invalidValue")),
        "{err}"
    );
    // Attributes no schema defines are bounded too.
    let (status, _) = call(
        &svc,
        Request::new("POST", "/Users")
            .with_json(&json!({"userName": "c", "x-tags": vec![1; 1_001]})),
    );
    assert_eq!(status, 400);

    let put = json!({"userName": "a", "emails": emails(1_001)});
    let (status, _) = call(
        &svc,
        Request::new("PUT", &format!("/Users/{id}")).with_json(&put),
    );
    assert_eq!(status, 400);
    let add = super::patch_op(
        json!([{"op": "add", "path": "emails", "value": [{"value": "one-more@x"}]}]),
    );
    let (status, err) = call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&add),
    );
    assert_eq!(
        (status, err["scimType"].clone()),
        (400, json!("invalidValue")),
        "{err}"
    );
    let (_, user) = call(&svc, Request::new("GET", &format!("/Users/{id}")));
    assert_eq!(user["emails"].as_array().map(Vec::len), Some(1_000));
    assert_eq!(user["meta"]["version"], "W/\"1\"");

    // Bulk operations count against the same limits, each on its own.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "d", "emails": emails(1_001)}},
        {"method": "POST", "path": "/Users", "bulkId": "v", "data": {"userName": "e"}}
    ]});
    let (status, body) = call(&svc, Request::new("POST", "/Bulk").with_json(&bulk));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Operations"][0]["status"], "400", "{body}");
    assert_eq!(body["Operations"][1]["status"], "201", "{body}");
}

#[test]
fn members_have_their_own_limit_on_both_paths() {
    for store in [MemoryStore::new(), MemoryStore::without_member_deltas()] {
        let mut config = ServiceConfig::default();
        config.max_members = 3;
        config.max_values = 1;
        let svc = Service::new(store, config);
        let ids: Vec<String> = (0..4)
            .map(|i| {
                let (status, u) = call(
                    &svc,
                    Request::new("POST", "/Users").with_json(&json!({"userName": format!("u{i}")})),
                );
                assert_eq!(status, 201);
                u["id"].as_str().expect("id").to_owned()
            })
            .collect();
        let members =
            |n: usize| -> Vec<Value> { ids[..n].iter().map(|id| json!({"value": id})).collect() };
        let (status, err) = call(
            &svc,
            Request::new("POST", "/Groups")
                .with_json(&json!({"displayName": "G", "members": members(4)})),
        );
        assert_eq!(
            (status, err["scimType"].clone()),
            (400, json!("invalidValue")),
            "{err}"
        );
        assert!(
            err["detail"].as_str().unwrap_or("").contains("max_members"),
            "{err}"
        );
        assert_eq!(total(&svc, "/Groups"), 0);
        // max_values (1 here) does not apply to members.
        let (status, g) = call(
            &svc,
            Request::new("POST", "/Groups")
                .with_json(&json!({"displayName": "G", "members": members(3)})),
        );
        assert_eq!(status, 201, "{g}");
        let gid = g["id"].as_str().expect("id").to_owned();
        let add = super::patch_op(
            json!([{"op": "add", "path": "members", "value": [{"value": ids[3]}]}]),
        );
        let (status, err) = call(
            &svc,
            Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&add),
        );
        assert_eq!(
            (status, err["scimType"].clone()),
            (400, json!("invalidValue")),
            "{err}"
        );
        let (_, g) = call(&svc, Request::new("GET", &format!("/Groups/{gid}")));
        assert_eq!(g["members"].as_array().map(Vec::len), Some(3), "{g}");
        assert_eq!(g["meta"]["version"], "W/\"1\"");
        // Swapping one member for another stays within the limit.
        let swap = super::patch_op(json!([
            {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])},
            {"op": "add", "path": "members", "value": [{"value": ids[3]}]}
        ]));
        let (status, body) = call(
            &svc,
            Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&swap),
        );
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn resource_size_is_bounded_without_counting_members() {
    let mut config = ServiceConfig::default();
    config.max_resource_bytes = 2_000;
    config.check_references = false;
    let svc = Service::new(MemoryStore::new(), config);
    let long = "x".repeat(3_000);
    let (status, err) = call(
        &svc,
        Request::new("POST", "/Users").with_json(&json!({"userName": "a", "displayName": long})),
    );
    assert_eq!(status, 413, "{err}");
    let (status, err) = call(
        &svc,
        Request::new("POST", "/Users").with_json(&json!({"userName": "a", "x-blob": long})),
    );
    assert_eq!(status, 413, "{err}");
    assert_eq!(total(&svc, "/Users"), 0);
    let (status, user) = call(
        &svc,
        Request::new("POST", "/Users").with_json(&json!({"userName": "a"})),
    );
    assert_eq!(status, 201);
    let id = user["id"].as_str().expect("id");
    let grow = super::patch_op(json!([{"op": "replace", "path": "displayName", "value": long}]));
    let (status, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&grow),
    );
    assert_eq!(status, 413);
    // A group's members are bounded by max_members, not by bytes.
    let members: Vec<Value> = (0..200)
        .map(|i| json!({"value": format!("member-{i:04}")}))
        .collect();
    let (status, g) = call(
        &svc,
        Request::new("POST", "/Groups").with_json(&json!({"displayName": "G", "members": members})),
    );
    assert_eq!(status, 201, "{g}");
}
