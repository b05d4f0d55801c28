//! The service end to end with `MemoryStore`: provisioning lifecycles as Okta and
//! Entra ID perform them, paging, concurrency, tenants, discovery, bulk, and every
//! error path.

mod common;

use std::sync::Arc;

use common::scenarios::{self, assert_error, call, clock, post, tenant};
use scimkit::service::{FixedClock, Request, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use serde_json::{Value, json};
use url::Url;

type Svc = Service<MemoryStore<String>>;

fn service_with(store: MemoryStore<String>, clock: Arc<FixedClock>) -> Svc {
    let base = Url::parse("https://example.com/scim/v2").expect("url");
    Service::new(store, ServiceConfig::with_base_url(base)).with_clock(clock)
}

fn service() -> Svc {
    service_with(MemoryStore::new(), clock())
}

#[tokio::test]
async fn okta_provisioning_lifecycle() {
    scenarios::okta_provisioning_lifecycle(service()).await;
}

#[tokio::test]
async fn entra_provisioning_lifecycle() {
    scenarios::entra_provisioning_lifecycle(service()).await;
}

#[tokio::test]
async fn provisioning_events() {
    scenarios::provisioning_events(service()).await;
}

/// The general path (no member deltas): the service derives member events from
/// the group as it was and as it is.
#[tokio::test]
async fn provisioning_events_without_member_deltas() {
    scenarios::provisioning_events(service_with(MemoryStore::without_member_deltas(), clock()))
        .await;
}

#[tokio::test]
async fn deleting_a_user_removes_it_from_groups() {
    scenarios::deleting_a_user_removes_it_from_groups(service()).await;
}

#[tokio::test]
async fn deleting_a_group_removes_it_from_its_parents() {
    scenarios::deleting_a_group_removes_it_from_its_parents(service()).await;
}

#[tokio::test]
async fn every_fixture_query_is_understood() {
    scenarios::every_fixture_query_is_understood(service()).await;
}

#[tokio::test]
async fn cursor_pagination() {
    scenarios::cursor_pagination(service()).await;
}

#[tokio::test]
async fn paging_is_stable_and_counted() {
    scenarios::paging_is_stable_and_counted(service()).await;
}

#[tokio::test]
async fn projection_honours_returned() {
    scenarios::projection_honours_returned(service()).await;
}

#[tokio::test]
async fn etags_and_conditional_requests() {
    scenarios::etags_and_conditional_requests(service()).await;
}

#[tokio::test]
async fn tenants_are_isolated() {
    scenarios::tenants_are_isolated(service()).await;
}

#[tokio::test]
async fn put_rules() {
    scenarios::put_rules(service()).await;
}

#[tokio::test]
async fn uniqueness_is_case_insensitive_and_per_tenant() {
    scenarios::uniqueness_is_case_insensitive_and_per_tenant(service()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_never_lose_members_through_deltas() {
    scenarios::concurrent_member_adds(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_never_lose_members_through_retries() {
    scenarios::concurrent_member_adds(MemoryStore::without_member_deltas()).await;
}

#[tokio::test]
async fn discovery_is_truthful() {
    scenarios::discovery_is_truthful(service()).await;
}

#[tokio::test]
async fn bulk_with_bulk_ids_and_fail_on_errors() {
    let svc = service();
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "qwerty", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Alice"}},
            {"method": "POST", "path": "/Groups", "bulkId": "ytrewq", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides", "members": [{"type": "User", "value": "bulkId:qwerty"}]}},
            {"method": "PATCH", "path": "/Users/bulkId:qwerty", "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]}},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice"}},
            {"method": "DELETE", "path": "/Users/nope"}
        ]
    });
    let (status, resp, _) = call(&svc, post("/Bulk", &bulk)).await;
    assert_eq!(status, 200, "{resp}");
    let ops = resp["Operations"].as_array().expect("Operations");
    assert_eq!(ops.len(), 5);
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[0]["bulkId"], "qwerty");
    let uid = ops[0]["location"]
        .as_str()
        .expect("location")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    assert_eq!(ops[1]["status"], "201");
    assert_eq!(ops[2]["status"], "200");
    assert_eq!(ops[3]["status"], "409");
    assert_eq!(ops[3]["response"]["scimType"], "uniqueness");
    assert_eq!(ops[4]["status"], "404");
    let gid = ops[1]["location"]
        .as_str()
        .expect("location")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    let (_, g, _) = call(&svc, Request::new("GET", &format!("/Groups/{gid}"))).await;
    assert_eq!(g["members"], json!([{"type": "User", "value": uid}]));

    // failOnErrors stops after that many errors.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "DELETE", "path": "/Users/nope"},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Bob"}}
        ]
    });
    let (_, resp, _) = call(&svc, post("/Bulk", &bulk)).await;
    assert_eq!(resp["Operations"].as_array().map(Vec::len), Some(1));

    // Limits.
    let small = Service::new(MemoryStore::<String>::new(), {
        let mut c = ServiceConfig::default();
        c.bulk_max_operations = 1;
        c
    });
    let resp = small.handle(&tenant(), post("/Bulk", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [{"method": "DELETE", "path": "/Users/a"}, {"method": "DELETE", "path": "/Users/b"}]}))).await;
    assert_eq!(resp.status, 413);
}

#[tokio::test]
async fn error_paths_are_scim_errors() {
    scenarios::error_paths_are_scim_errors(service()).await;
}

#[tokio::test]
async fn media_types_and_trailing_slashes() {
    scenarios::media_types_and_trailing_slashes(service()).await;
}

#[tokio::test]
async fn patch_can_answer_204() {
    let mut config = ServiceConfig::default();
    config.patch_response = scimkit::service::PatchResponse::NoContent;
    let svc = Service::new(MemoryStore::<String>::new(), config);
    let created = svc.handle(&tenant(), post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"}))).await;
    let id = created.json_body().expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let resp = svc
        .handle(
            &tenant(),
            Request::new("PATCH", &format!("/Users/{id}")).with_json(&op),
        )
        .await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("ETag"), Some("W/\"2\""));
}

#[test]
fn the_service_future_is_send() {
    fn is_send<T: Send>(_: &T) {}
    let svc = service();
    let t = tenant();
    let fut = svc.handle(&t, Request::new("GET", "/Users"));
    is_send(&fut);
}

#[tokio::test]
async fn a_host_resource_type_is_served_like_the_built_in_ones() {
    use scimkit::schema::{
        Attribute, AttributeType, Mutability, Registry, ResourceType, Schema, Uniqueness,
    };
    let device_urn = "urn:example:params:scim:schemas:core:2.0:Device";
    let ext_urn = "urn:example:params:scim:schemas:extension:acme:2.0:Device";
    let mut registry = Registry::core();
    registry
        .add_schema(Schema::new(
            device_urn,
            "Device",
            vec![
                Attribute::new("serialNumber", AttributeType::String)
                    .with_required(true)
                    .with_case_exact(true)
                    .with_mutability(Mutability::Immutable)
                    .with_uniqueness(Uniqueness::Server),
                Attribute::new("label", AttributeType::String),
                Attribute::new("ports", AttributeType::Integer),
            ],
        ))
        .add_schema(Schema::new(
            ext_urn,
            "AcmeDevice",
            vec![Attribute::new("rack", AttributeType::String)],
        ));
    registry
        .add_resource_type(
            ResourceType::new("Device", "/Devices", device_urn).with_extension(ext_urn, false),
        )
        .expect("registers");
    let svc = Service::new(MemoryStore::<String>::new(), ServiceConfig::default())
        .with_registry(registry);

    let body = json!({"schemas": [device_urn], "SerialNumber": "SN-1", "label": "Printer", "ports": "4", ext_urn: {"Rack": "B2"}});
    let (status, device, _) = call(&svc, post("/Devices", &body)).await;
    assert_eq!(status, 201, "{device}");
    let id = device["id"].as_str().expect("id").to_owned();
    assert_eq!(device["serialNumber"], "SN-1");
    assert_eq!(device["ports"], 4);
    assert_eq!(device["schemas"], json!([device_urn, ext_urn]));
    assert_eq!(device[ext_urn], json!({"rack": "B2"}));
    assert_eq!(device["meta"]["resourceType"], "Device");

    let (_, found, _) = call(
        &svc,
        Request::new("GET", "/Devices?filter=ports+gt+3+and+rack+eq+%22b2%22"),
    )
    .await;
    assert_eq!(found["totalResults"], 1);
    let (status, dup, _) = call(
        &svc,
        post(
            "/Devices",
            &json!({"schemas": [device_urn], "serialNumber": "SN-1"}),
        ),
    )
    .await;
    assert_error(status, &dup, 409, Some("uniqueness"));
    // serialNumber is caseExact: another case is another value.
    assert_eq!(
        call(
            &svc,
            post(
                "/Devices",
                &json!({"schemas": [device_urn], "serialNumber": "sn-1"})
            )
        )
        .await
        .0,
        201
    );

    // Immutable: PUT may repeat it or leave it out, not change it.
    let put = |serial: Option<&str>| {
        let mut b = json!({"schemas": [device_urn], "label": "Copier"});
        if let Some(s) = serial {
            b["serialNumber"] = json!(s);
        }
        Request::new("PUT", &format!("/Devices/{id}")).with_json(&b)
    };
    let (status, err, _) = call(&svc, put(Some("SN-2"))).await;
    assert_error(status, &err, 400, Some("mutability"));
    let (status, same, _) = call(&svc, put(Some("SN-1"))).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["label"], "Copier");
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "serialNumber", "value": "SN-3"}]});
    let (status, err, _) = call(
        &svc,
        Request::new("PATCH", &format!("/Devices/{id}")).with_json(&op),
    )
    .await;
    assert_error(status, &err, 400, Some("mutability"));

    let (_, types, _) = call(&svc, Request::new("GET", "/ResourceTypes/Device")).await;
    assert_eq!(types["endpoint"], "/Devices");
    let (status, schema, _) = call(&svc, Request::new("GET", &format!("/Schemas/{ext_urn}"))).await;
    assert_eq!(status, 200);
    assert_eq!(schema["attributes"][0]["name"], "rack");
}

/// A store with only the required methods: the service's general paths for member
/// changes (read, patch, replace) and for `User.groups` (a filtered list). Its mode
/// makes group lists (1) or group writes (2) fail, as a database that went away would.
struct Plain(MemoryStore<String>, std::sync::atomic::AtomicU8);

const GROUP_LISTS_FAIL: u8 = 1;
const GROUP_WRITES_FAIL: u8 = 2;

impl Plain {
    fn new() -> Self {
        Plain(MemoryStore::new(), std::sync::atomic::AtomicU8::new(0))
    }

    fn fails(&self, rt: &str, mode: u8) -> bool {
        rt == "Group" && self.1.load(std::sync::atomic::Ordering::Relaxed) == mode
    }
}

impl scimkit::store::Store for Plain {
    type Context = String;

    async fn create(
        &self,
        ctx: &String,
        rt: &str,
        record: scimkit::store::Record,
        unique: &[scimkit::store::UniqueValue],
        events: &[scimkit::events::Event],
    ) -> Result<scimkit::store::Record, scimkit::store::StoreError> {
        self.0.create(ctx, rt, record, unique, events).await
    }

    async fn get(
        &self,
        ctx: &String,
        rt: &str,
        id: &str,
        projection: &scimkit::store::Projection,
    ) -> Result<scimkit::store::Record, scimkit::store::StoreError> {
        self.0.get(ctx, rt, id, projection).await
    }

    async fn replace(
        &self,
        ctx: &String,
        rt: &str,
        record: scimkit::store::Record,
        expected: u64,
        unique: &[scimkit::store::UniqueValue],
        events: &[scimkit::events::Event],
    ) -> Result<scimkit::store::Record, scimkit::store::StoreError> {
        if self.fails(rt, GROUP_WRITES_FAIL) {
            return Err(scimkit::store::StoreError::backend("disk full"));
        }
        self.0
            .replace(ctx, rt, record, expected, unique, events)
            .await
    }

    async fn delete(
        &self,
        ctx: &String,
        rt: &str,
        id: &str,
        expected: Option<u64>,
        events: &[scimkit::events::Event],
    ) -> Result<(), scimkit::store::StoreError> {
        self.0.delete(ctx, rt, id, expected, events).await
    }

    async fn list(
        &self,
        ctx: &String,
        rt: &str,
        query: &scimkit::store::ListQuery<'_>,
    ) -> Result<scimkit::store::Page, scimkit::store::StoreError> {
        if self.fails(rt, GROUP_LISTS_FAIL) {
            return Err(scimkit::store::StoreError::backend("connection reset"));
        }
        self.0.list(ctx, rt, query).await
    }
}

#[tokio::test]
async fn user_groups_follow_memberships_and_group_deletion_with_a_plain_store() {
    // A store without `existing_ids` checks references exactly, and the member ids
    // here differ in case on purpose: this is about memberships, not references.
    let mut config = ServiceConfig::default();
    config.check_references = false;
    let svc = Service::new(Plain::new(), config);
    let t = tenant();
    let handle = |req: Request| {
        let svc = &svc;
        let t = &t;
        async move {
            let r = svc.handle(t, req).await;
            (r.status, r.json_body().unwrap_or(Value::Null))
        }
    };
    let (_, u) = handle(post(
        "/Users",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann"}),
    ))
    .await;
    let uid = u["id"].as_str().expect("id").to_owned();
    let mut gids = Vec::new();
    for name in ["Alpha", "Beta"] {
        let (_, g) = handle(post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}))).await;
        let gid = g["id"].as_str().expect("id").to_owned();
        // The member id in another case still names the same user (members.value is not caseExact).
        let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid.to_uppercase()}]}]});
        let (status, body) =
            handle(Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&op)).await;
        assert_eq!(status, 200, "{body}");
        gids.push(gid);
    }
    let (_, u) = handle(Request::new("GET", &format!("/Users/{uid}"))).await;
    let names: Vec<&str> = u["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["display"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{u}");
    assert!(names.contains(&"Alpha") && names.contains(&"Beta"));
    // Deleting a group removes it from the user's groups.
    let (status, _) = handle(Request::new("DELETE", &format!("/Groups/{}", gids[0]))).await;
    assert_eq!(status, 204);
    let (_, u) = handle(Request::new("GET", &format!("/Users/{uid}"))).await;
    assert_eq!(u["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(u["groups"][0]["display"], "Beta");
    // The list view derives groups too.
    let (_, list) = handle(Request::new("GET", "/Users")).await;
    assert_eq!(list["Resources"][0]["groups"][0]["value"], json!(gids[1]));
    // Deleting the user takes it out of the remaining group.
    assert_eq!(
        handle(Request::new("DELETE", &format!("/Users/{uid}")))
            .await
            .0,
        204
    );
    let (_, g) = handle(Request::new("GET", &format!("/Groups/{}", gids[1]))).await;
    assert!(g.get("members").is_none(), "{g}");
}

/// The delete is committed before the deleted user leaves its groups: when that
/// second step fails, the client still learns that the user is gone (a retry would
/// only find it missing), and the host's logs learn what failed.
#[tokio::test]
async fn a_delete_that_cannot_leave_its_groups_is_still_a_delete() {
    let mut config = ServiceConfig::default();
    config.check_references = false;
    let svc = Service::new(Plain::new(), config);
    let t = tenant();
    let set_mode = |mode: u8| {
        svc.store()
            .1
            .store(mode, std::sync::atomic::Ordering::Relaxed)
    };
    let create = |path: &'static str, body: Value| {
        let svc = &svc;
        let t = &t;
        async move {
            let resp = svc.handle(t, post(path, &body)).await;
            assert_eq!(resp.status, 201);
            resp.json_body().expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
    };
    for (mode, want) in [
        (GROUP_LISTS_FAIL, "connection reset"),
        (GROUP_WRITES_FAIL, "disk full"),
    ] {
        set_mode(0);
        let uid = create(
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("ann{mode}")}),
        )
        .await;
        let gid = create(
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("G{mode}"), "members": [{"value": uid}]}),
        )
        .await;

        set_mode(mode);
        let deleted = svc
            .handle(&t, Request::new("DELETE", &format!("/Users/{uid}")))
            .await;
        assert_eq!(deleted.status, 204);
        assert!(deleted.body.is_empty());
        let cause = deleted.cause.unwrap_or_default();
        assert!(
            cause.contains("was deleted") && cause.contains(want),
            "{cause}"
        );
        set_mode(0);
        let gone = svc
            .handle(&t, Request::new("GET", &format!("/Users/{uid}")))
            .await;
        assert_eq!(gone.status, 404);
        // The group keeps the member it could not lose, as documented.
        let g = svc
            .handle(&t, Request::new("GET", &format!("/Groups/{gid}")))
            .await;
        assert_eq!(
            g.json_body().expect("json")["members"][0]["value"],
            json!(uid)
        );
    }

    // In a bulk request the operation's cause reaches the host through the bulk
    // response's.
    let uid = create(
        "/Users",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bulk"}),
    )
    .await;
    create(
        "/Groups",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "B", "members": [{"value": uid}]}),
    )
    .await;
    set_mode(GROUP_WRITES_FAIL);
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "DELETE", "path": format!("/Users/{uid}")}]
    });
    let resp = svc.handle(&t, post("/Bulk", &bulk)).await;
    set_mode(0);
    assert_eq!(resp.status, 200);
    let body = resp.json_body().expect("json");
    assert_eq!(body["Operations"][0]["status"], json!("204"), "{body}");
    let cause = resp.cause.unwrap_or_default();
    assert!(
        cause.contains("Operations[0]") && cause.contains("disk full"),
        "{cause}"
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn arb_method() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("GET".to_owned()),
            Just("POST".to_owned()),
            Just("PUT".to_owned()),
            Just("PATCH".to_owned()),
            Just("DELETE".to_owned()),
            "[A-Za-z]{0,7}",
        ]
    }

    fn arb_path() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/Users".to_owned()),
            Just("/Users/u1".to_owned()),
            Just("/Groups/g1".to_owned()),
            Just("/Users/.search".to_owned()),
            Just("/.search".to_owned()),
            Just("/Bulk".to_owned()),
            Just("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User".to_owned()),
            "(/[A-Za-z0-9.%é:_-]{0,12}){0,4}",
        ]
    }

    fn arb_query() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "filter=[a-zA-Z \"()\\[\\].%+]{0,40}",
            "(startIndex|count|sortBy|sortOrder|attributes|excludedAttributes)=[-0-9a-zA-Z.,%]{0,12}",
            "[ -~]{0,40}",
        ]
    }

    fn arb_body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            any::<Vec<u8>>(),
            Just(br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u"}"#.to_vec()),
            Just(br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":"x"}]}"#.to_vec()),
            Just(br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"POST","path":"/Users","bulkId":"a","data":{"userName":"bulkId:a"}}]}"#.to_vec()),
            "[ -~]{0,80}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever arrives, the service answers, and every error is a SCIM error.
        #[test]
        fn any_request_gets_a_scim_answer(method in arb_method(), path in arb_path(), query in arb_query(), body in arb_body(), json_type in any::<bool>()) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let svc = service();
            rt.block_on(async {
                // Something to find, update and delete.
                let _ = svc.handle(&tenant(), post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "existing"}))).await;
                let mut req = Request::new(method.clone(), &path).with_body(body);
                req.query = query.clone();
                if json_type {
                    req = req.with_header("Content-Type", "application/scim+json");
                }
                let resp = svc.handle(&tenant(), req).await;
                prop_assert!((200..600).contains(&resp.status));
                if resp.status >= 400 {
                    let body = resp.json_body().unwrap_or(Value::Null);
                    prop_assert_eq!(&body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{} {}?{}: {}", method, path, query, body);
                    let status = resp.status.to_string();
                    prop_assert_eq!(body["status"].as_str(), Some(status.as_str()));
                }
                Ok(())
            })?;
        }
    }
}

#[tokio::test]
async fn projection_of_extension_attributes() {
    scenarios::projection_of_extension_attributes(service()).await;
}

mod member_deltas {
    //! The member fast path (an index per group, O(1) a change) answers exactly as
    //! the general read–patch–replace path, up to the order of members.
    use super::*;
    use proptest::prelude::*;

    const IDS: &[&str] = &["m1", "M1", "m2", "m3", "Ä4", "ä4", "m5"];

    fn op() -> impl Strategy<Value = Value> {
        let id = proptest::sample::select(IDS);
        prop_oneof![
            3 => proptest::collection::vec(id.clone(), 1..3).prop_map(|ids| json!({"op": "add", "path": "members", "value": ids.iter().map(|i| json!({"value": i, "display": i.to_uppercase()})).collect::<Vec<_>>()})),
            3 => id.clone().prop_map(|i| json!({"op": "remove", "path": format!("members[value eq \"{i}\"]")})),
            1 => proptest::collection::vec(id, 1..3).prop_map(|ids| json!({"op": "remove", "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()})),
        ]
    }

    fn members(svc: &Service<MemoryStore<String>>, gid: &str) -> (Vec<Value>, Value) {
        let resp = block_on(svc.handle(&tenant(), Request::new("GET", &format!("/Groups/{gid}"))));
        let body = resp.json_body().expect("json");
        let mut list = body["members"].as_array().cloned().unwrap_or_default();
        list.sort_by_key(|m| m["value"].as_str().unwrap_or("").to_owned());
        (list, body["meta"]["version"].clone())
    }

    /// MemoryStore's futures are ready at once (a proptest body cannot be async).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn the_fast_path_agrees_with_the_general_one(
            patches in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..8),
            max in 2usize..6,
        ) {
            let make = |store: MemoryStore<String>| {
                let mut config = ServiceConfig::default();
                config.check_references = false;
                config.max_members = max;
                Service::new(store, config)
            };
            let fast = make(MemoryStore::new());
            let general = make(MemoryStore::without_member_deltas());
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"});
            let mut gids = Vec::new();
            for svc in [&fast, &general] {
                let resp = block_on(svc.handle(&tenant(), Request::new("POST", "/Groups").with_json(&body)));
                gids.push(resp.json_body().expect("json")["id"].as_str().expect("id").to_owned());
            }
            for ops in patches {
                let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
                let (fast_before, fast_version) = members(&fast, &gids[0]);
                let mut statuses = Vec::new();
                for (svc, gid) in [(&fast, &gids[0]), (&general, &gids[1])] {
                    let req = Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&op);
                    statuses.push(block_on(svc.handle(&tenant(), req)).status);
                }
                prop_assert_eq!(statuses[0], statuses[1], "{}", op);
                let (fast_after, fast_version_after) = members(&fast, &gids[0]);
                prop_assert_eq!(&fast_after, &members(&general, &gids[1]).0, "{}", op);
                // A new version exactly when the members changed (adding and removing
                // one member in the same PATCH is no change).
                prop_assert_eq!(fast_version_after != fast_version, fast_after != fast_before, "{}", op);
            }
        }
    }
}
