//! POST, PUT and PATCH accepted group members whose `value` named no resource, so
//! groups pointed at nothing. By default such a write is 400 `invalidValue` naming
//! the unknown ids, checked with one store query per referenced resource type; hosts
//! that sync out of order turn `ServiceConfig::check_references` off.

use std::sync::atomic::{AtomicUsize, Ordering};

use scimkit::events::Event;
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::{
    ListQuery, MemberDelta, Membership, MemoryStore, Page, Projection, Record, Store, StoreError,
    UniqueValue,
};
use serde_json::{Value, json};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// A MemoryStore that counts the reference look-ups.
#[derive(Default)]
struct Counting {
    inner: MemoryStore<()>,
    lookups: AtomicUsize,
}

impl Store for Counting {
    type Context = ();
    async fn create(
        &self,
        c: &(),
        t: &str,
        r: Record,
        u: &[UniqueValue],
        e: &[Event],
    ) -> Result<Record, StoreError> {
        self.inner.create(c, t, r, u, e).await
    }
    async fn get(&self, c: &(), t: &str, id: &str, p: &Projection) -> Result<Record, StoreError> {
        self.inner.get(c, t, id, p).await
    }
    async fn replace(
        &self,
        c: &(),
        t: &str,
        r: Record,
        v: u64,
        u: &[UniqueValue],
        e: &[Event],
    ) -> Result<Record, StoreError> {
        self.inner.replace(c, t, r, v, u, e).await
    }
    async fn delete(
        &self,
        c: &(),
        t: &str,
        id: &str,
        v: Option<u64>,
        e: &[Event],
    ) -> Result<(), StoreError> {
        self.inner.delete(c, t, id, v, e).await
    }
    async fn list(&self, c: &(), t: &str, q: &ListQuery<'_>) -> Result<Page, StoreError> {
        self.inner.list(c, t, q).await
    }
    async fn update_members(
        &self,
        c: &(),
        t: &str,
        id: &str,
        d: &MemberDelta,
        v: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.update_members(c, t, id, d, v).await
    }
    async fn memberships(
        &self,
        c: &(),
        t: &str,
        a: &str,
        ids: &[&str],
    ) -> Result<Option<Vec<Membership>>, StoreError> {
        self.inner.memberships(c, t, a, ids).await
    }
    async fn existing_ids(
        &self,
        c: &(),
        t: &str,
        ids: &[&str],
        exact: bool,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.inner.existing_ids(c, t, ids, exact).await
    }
}

fn call<S: Store<Context = ()>>(svc: &Service<S>, req: Request) -> (u16, Value) {
    let resp = super::block_on(svc.handle(&(), req));
    (resp.status, resp.json_body().unwrap_or(Value::Null))
}

fn user<S: Store<Context = ()>>(svc: &Service<S>, name: &str) -> String {
    let (status, body) = call(
        svc,
        Request::new("POST", "/Users").with_json(&json!({"userName": name})),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

fn assert_unknown(status: u16, body: &Value, ids: &[&str]) {
    assert_eq!(
        (status, body["scimType"].clone()),
        (400, json!("invalidValue")),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap_or("");
    for id in ids {
        assert!(detail.contains(id), "{detail} should name {id}");
    }
}

#[test]
fn unknown_members_are_refused_everywhere() {
    for store in [MemoryStore::new(), MemoryStore::without_member_deltas()] {
        let svc = Service::new(store, ServiceConfig::default());
        let ann = user(&svc, "ann");
        let group = json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": ann}, {"value": "nobody"}, {"value": "ghost"}]});
        let (status, body) = call(&svc, Request::new("POST", "/Groups").with_json(&group));
        assert_unknown(status, &body, &["nobody", "ghost"]);
        let (_, list) = call(&svc, Request::new("GET", "/Groups"));
        assert_eq!(list["totalResults"], 0, "nothing stored");

        // A user, a nested group and a user id in another case are all fine.
        let (status, inner) = call(
            &svc,
            Request::new("POST", "/Groups").with_json(&json!({"displayName": "Inner"})),
        );
        assert_eq!(status, 201);
        let inner = inner["id"].as_str().expect("id").to_owned();
        let group = json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": ann.to_uppercase()}, {"value": inner, "type": "Group"}]});
        let (status, created) = call(&svc, Request::new("POST", "/Groups").with_json(&group));
        assert_eq!(status, 201, "{created}");
        let gid = created["id"].as_str().expect("id").to_owned();
        let before = created["members"].clone();

        let put = json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": ann}, {"value": "nobody"}]});
        let (status, body) = call(
            &svc,
            Request::new("PUT", &format!("/Groups/{gid}")).with_json(&put),
        );
        assert_unknown(status, &body, &["nobody"]);

        for ops in [
            json!([{"op": "add", "path": "members", "value": [{"value": "nobody"}]}]),
            json!([{"op": "add", "path": "members", "value": "nobody"}]),
            json!([{"op": "replace", "path": "members", "value": [{"value": ann}, {"value": "nobody"}]}]),
            json!([{"op": "add", "value": {"members": [{"value": "nobody"}]}}]),
            json!([{"op": "remove", "path": format!("members[value eq \"{inner}\"]")}, {"op": "add", "path": "members", "value": [{"value": "nobody"}]}]),
        ] {
            let (status, body) = call(
                &svc,
                Request::new("PATCH", &format!("/Groups/{gid}"))
                    .with_json(&super::patch_op(ops.clone())),
            );
            assert_unknown(status, &body, &["nobody"]);
        }
        let (_, after) = call(&svc, Request::new("GET", &format!("/Groups/{gid}")));
        assert_eq!(after["members"], before, "unchanged");

        // In bulk, each operation is checked like a request of its own.
        let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "B", "members": [{"value": "nobody"}]}}
        ]});
        let (status, body) = call(&svc, Request::new("POST", "/Bulk").with_json(&bulk));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["Operations"][0]["status"], "400", "{body}");
    }
}

#[test]
fn references_are_checked_in_one_query_per_type() {
    let svc = Service::new(Counting::default(), ServiceConfig::default());
    let ann = user(&svc, "ann");
    let mut members: Vec<Value> = (0..500)
        .map(|i| json!({"value": format!("ghost-{i}")}))
        .collect();
    members.push(json!({"value": ann}));
    let (status, body) = call(
        &svc,
        Request::new("POST", "/Groups").with_json(&json!({"displayName": "G", "members": members})),
    );
    assert_unknown(status, &body, &["ghost-0", "ghost-9", "and 490 more"]);
    // User, then Group for what is still missing.
    assert_eq!(svc.store().lookups.load(Ordering::Relaxed), 2);
}

#[test]
fn hosts_that_sync_out_of_order_can_opt_out() {
    let mut config = ServiceConfig::default();
    config.check_references = false;
    let svc = Service::new(MemoryStore::new(), config);
    let group = json!({"displayName": "G", "members": [{"value": "provisioned-later"}]});
    let (status, body) = call(&svc, Request::new("POST", "/Groups").with_json(&group));
    assert_eq!(status, 201, "{body}");
}
