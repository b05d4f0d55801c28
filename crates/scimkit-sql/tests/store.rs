//! The service scenarios every store must pass (`tests/common/scenarios.rs` of the
//! workspace), run on [`SqlStore`] over SQLite (in memory and in a WAL file) and over
//! PostgreSQL (127.0.0.1:5432, in a database of the test's own, dropped afterwards;
//! skipped with a message when it is not reachable, a failure in CI).

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::scenarios::{self, clock};
use scimkit::Registry;
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit_sql::store::SqlStore;

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

/// A database (or file) of one test's own, removed when it is dropped.
enum Scratch {
    Memory,
    File(std::path::PathBuf),
    Postgres(String),
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `field` of each resource a service lists at `path` (which may carry a query
/// already) for `filter`, in the order listed.
async fn listed<S: scimkit::store::Store<Context = String>>(
    svc: &Service<S>,
    path: &str,
    filter: &str,
    field: &str,
) -> Vec<String> {
    let join = if path.contains('?') { '&' } else { '?' };
    let path = format!(
        "{path}{join}filter={}",
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let (status, body, _) =
        common::scenarios::call(svc, scimkit::service::Request::new("GET", &path)).await;
    assert_eq!(status, 200, "{filter}: {body}");
    body["Resources"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| r[field].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Scratch {
    /// The URL a store connects to.
    fn url(&self) -> String {
        match self {
            Scratch::Memory => "sqlite::memory:".to_owned(),
            Scratch::File(path) => path.display().to_string(),
            Scratch::Postgres(db) => format!("postgres://postgres@127.0.0.1:5432/{db}"),
        }
    }

    fn file() -> Scratch {
        Scratch::File(std::env::temp_dir().join(format!("{}.db", unique_name("scimkit_store"))))
    }

    /// A new PostgreSQL database; `None` (after saying so) when PostgreSQL is not
    /// reachable outside CI.
    fn postgres() -> Option<Scratch> {
        // The synchronous client runs its own runtime: on a thread of its own.
        let connected =
            std::thread::spawn(|| ::postgres::Client::connect(ADMIN, ::postgres::NoTls))
                .join()
                .expect("thread");
        let mut admin = match connected {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "PostgreSQL is required in CI and is not reachable: {e}"
                );
                eprintln!("skipped: PostgreSQL is not reachable at 127.0.0.1:5432 ({e})");
                return None;
            }
        };
        let db = unique_name("scimkit_store");
        let sql = format!("CREATE DATABASE {db}");
        std::thread::spawn(move || admin.batch_execute(&sql))
            .join()
            .expect("thread")
            .expect("create database");
        Some(Scratch::Postgres(db))
    }

    async fn store(&self) -> SqlStore<String> {
        SqlStore::connect(&self.url(), Registry::core())
            .await
            .expect("store")
    }

    /// A SQLite file of the test's own, its path, and a service on it that takes
    /// member values as given (no reference checks).
    async fn file_service() -> (Scratch, std::path::PathBuf, Service<SqlStore<String>>) {
        let scratch = Scratch::file();
        let Scratch::File(path) = &scratch else {
            unreachable!()
        };
        let path = path.clone();
        let mut config = ServiceConfig::default();
        config.check_references = false;
        let svc = Service::new(scratch.store().await, config).with_clock(clock());
        (scratch, path, svc)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::Memory => {}
            Scratch::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Scratch::Postgres(db) => {
                let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                // The synchronous client runs its own runtime: on a thread of its own.
                let _ = std::thread::spawn(move || {
                    if let Ok(mut admin) = ::postgres::Client::connect(ADMIN, ::postgres::NoTls) {
                        let _ = admin.batch_execute(&sql);
                    }
                })
                .join();
            }
        }
    }
}

fn service(store: SqlStore<String>) -> Service<SqlStore<String>> {
    let base = url::Url::parse("https://example.com/scim/v2").expect("url");
    Service::new(store, ServiceConfig::with_base_url(base)).with_clock(clock())
}

/// One scenario on each database: `$name` on SQLite in memory, in a file, and on
/// PostgreSQL.
macro_rules! on_every_database {
    ($($name:ident),* $(,)?) => {
        mod sqlite_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let scratch = Scratch::Memory;
                    let store = scratch.store().await;
                    scenarios::$name(service(store.clone())).await;
                    store.close().await;
                }
            )*
        }
        mod sqlite_file {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let scratch = Scratch::file();
                    let store = scratch.store().await;
                    scenarios::$name(service(store.clone())).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(scratch) = Scratch::postgres() else { return };
                    let store = scratch.store().await;
                    scenarios::$name(service(store.clone())).await;
                    store.close().await;
                }
            )*
        }
    };
}

on_every_database!(
    okta_provisioning_lifecycle,
    entra_provisioning_lifecycle,
    deleting_a_user_removes_it_from_groups,
    deleting_a_group_removes_it_from_its_parents,
    every_fixture_query_is_understood,
    paging_is_stable_and_counted,
    cursor_pagination,
    projection_honours_returned,
    etags_and_conditional_requests,
    put_rules,
    uniqueness_is_case_insensitive_and_per_tenant,
    tenants_are_isolated,
    discovery_is_truthful,
    error_paths_are_scim_errors,
    media_types_and_trailing_slashes,
    projection_of_extension_attributes,
    provisioning_events,
);

/// 16 clients adding 100 members each to one group: 1,600 members, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_member_adds_on_sqlite_file() {
    let scratch = Scratch::file();
    scenarios::concurrent_member_adds(scratch.store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_member_adds_on_postgres() {
    let Some(scratch) = Scratch::postgres() else {
        return;
    };
    scenarios::concurrent_member_adds(scratch.store().await).await;
}

/// A look-up by `id` or `userName` (at most one user, found by the database) is
/// light work, served inline by an async host; other lists stay off its workers:
/// filters on attributes that are not unique, other operators, several
/// comparisons, groups (whose members may be many), and a value the SQL cannot
/// bind (U+0000), which would be searched in memory.
async fn look_ups_by_unique_attributes_are_light(store: SqlStore<String>) {
    let svc = service(store);
    let get = |query: &str| Request::new("GET", &format!("/Users?{query}"));
    for light in [
        "filter=userName%20eq%20%22bjensen%22",
        "filter=userName+eq+%22bjensen%22&startIndex=1&count=100",
        "filter=id%20eq%20%222819c223%22",
        "filter=urn:ietf:params:scim:schemas:core:2.0:User:userName%20eq%20%22b%22",
        "filter=USERNAME%20EQ%20%22b%22&sortBy=name.familyName",
    ] {
        assert!(svc.is_light(&get(light)), "{light}");
    }
    for heavy in [
        "",
        "count=10",
        "filter=displayName%20eq%20%22Babs%22",
        "filter=externalId%20eq%20%22x%22",
        "filter=userName%20sw%20%22b%22",
        "filter=userName%20eq%20%22b%22%20and%20active%20eq%20true",
        "filter=emails.value%20eq%20%22b@example.com%22",
        "filter=name.familyName%20eq%20%22Jensen%22",
        "filter=userName%20eq%20%22a%00b%22",
        "filter=userName%20eq",
        // Not a string: what no store keeps unique (every user without one).
        "filter=userName%20eq%20null",
        "filter=id%20eq%205",
        "filter=userName%20eq%20true",
    ] {
        assert!(!svc.is_light(&get(heavy)), "{heavy}");
    }
    let groups = Request::new("GET", "/Groups?filter=id%20eq%20%22x%22");
    assert!(!svc.is_light(&groups));
    let delete = Request::new("DELETE", "/Users?filter=userName%20eq%20%22b%22");
    assert!(!svc.is_light(&delete));
}

/// A host type's look-ups are light only by the attributes whose values the store
/// keeps unique: single-valued strings of its core schema. Not by an extension's
/// attribute, a list, a number, or `eq null` (every resource without a value).
#[tokio::test]
async fn look_ups_of_a_host_type_are_light_only_by_values_kept_unique() {
    use scimkit::schema::{Attribute, AttributeType, ResourceType, Schema, Uniqueness};
    let device = "urn:example:params:scim:schemas:core:2.0:Device";
    let acme = "urn:example:params:scim:schemas:extension:acme:2.0:Device";
    let unique = |name: &str, kind: AttributeType| {
        Attribute::new(name, kind).with_uniqueness(Uniqueness::Server)
    };
    let registry = || {
        let mut registry = Registry::core();
        registry
            .add_schema(Schema::new(
                device,
                "Device",
                vec![
                    unique("serialNumber", AttributeType::String).with_required(true),
                    unique("tag", AttributeType::String),
                    unique("badge", AttributeType::Integer),
                    unique("aliases", AttributeType::String).with_multi_valued(true),
                ],
            ))
            .add_schema(Schema::new(
                acme,
                "AcmeDevice",
                vec![unique("assetId", AttributeType::String)],
            ));
        registry
            .add_resource_type(
                ResourceType::new("Device", "/Devices", device).with_extension(acme, false),
            )
            .expect("registers");
        registry
    };
    let store = SqlStore::<String>::connect("sqlite::memory:", registry())
        .await
        .expect("store");
    let svc = service(store.clone()).with_registry(registry());
    let get = |filter: &str| Request::new("GET", &format!("/Devices?filter={filter}"));
    for light in [
        "serialNumber%20eq%20%22A1%22",
        "tag%20eq%20%22t%22",
        "id%20eq%20%22d1%22",
    ] {
        assert!(svc.is_light(&get(light)), "{light}");
    }
    for heavy in [
        "tag%20eq%20null",
        "badge%20eq%205",
        "badge%20eq%20%225%22",
        "aliases%20eq%20%22a%22",
        &format!("{acme}:assetId%20eq%20%22x%22"),
        "assetId%20eq%20%22x%22",
    ] {
        assert!(!svc.is_light(&get(heavy)), "{heavy}");
    }
    store.close().await;
}

#[tokio::test]
async fn look_ups_by_unique_attributes_are_light_on_sqlite() {
    let scratch = Scratch::Memory;
    look_ups_by_unique_attributes_are_light(scratch.store().await).await;
}

#[tokio::test]
async fn look_ups_by_unique_attributes_are_light_on_postgres() {
    let Some(scratch) = Scratch::postgres() else {
        return;
    };
    let store = scratch.store().await;
    look_ups_by_unique_attributes_are_light(store.clone()).await;
    store.close().await;
}

mod instances {
    //! Several instances on one database: each a store with its own pool (its own
    //! connections, as separate processes have), driven alternately. Every guarantee
    //! comes from the database.
    use super::*;
    use common::scenarios::{call, post, tenant};
    use scimkit::service::Request;
    use serde_json::{Value, json};
    use std::sync::Arc;

    type Svc = Arc<Service<SqlStore<String>>>;

    /// Each scenario on one SQLite file and on one PostgreSQL database (skipped,
    /// saying so, where PostgreSQL is not reachable outside CI).
    macro_rules! on_one_file_and_one_database {
        ($($scenario:ident),* $(,)?) => {
            $(
                mod $scenario {
                    use super::*;

                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn on_one_sqlite_file() {
                        super::$scenario(Scratch::file()).await;
                    }

                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn on_one_postgres_database() {
                        if let Some(scratch) = Scratch::postgres() {
                            super::$scenario(scratch).await;
                        }
                    }
                }
            )*
        };
    }

    on_one_file_and_one_database!(
        retried_writes,
        events_read_during_writes,
        names_traded,
        deletes_beside_member_adds,
        member_adds,
        if_match,
        one_user_name
    );

    /// `n` services, each on a store of its own, on the database `scratch` names.
    async fn instances(scratch: &Scratch, n: usize) -> Vec<Svc> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut config = ServiceConfig::default();
            // Made-up member ids: this is about concurrency, not references.
            config.check_references = false;
            out.push(Arc::new(
                Service::new(scratch.store().await, config).with_clock(clock()),
            ));
        }
        out
    }

    /// Every event kept, read by a consumer of its own.
    async fn events_of(svc: &Svc) -> Vec<scimkit::events::StoredEvent<String>> {
        use scimkit::events::EventLog;
        svc.store()
            .read_events(&format!("check-{}", unique_name("c")), 1_000_000)
            .await
            .expect("events")
    }

    /// The versions `id`'s events name, in sequence (commit) order: each write's
    /// once, increasing.
    fn versions_of(events: &[scimkit::events::StoredEvent<String>], id: &str) -> Vec<u64> {
        let mut out: Vec<u64> = events
            .iter()
            .filter(|e| e.event.resource_id == id)
            .map(|e| e.event.version)
            .collect();
        out.dedup();
        out
    }

    async fn status(svc: &Svc, req: Request) -> (u16, Value) {
        let resp = svc.handle(&tenant(), req).await;
        (resp.status, resp.json_body().unwrap_or(Value::Null))
    }

    /// 16 clients × 100 member adds, alternating between instances: 1,600 members.
    async fn member_adds(scratch: Scratch) {
        let svcs = instances(&scratch, 3).await;
        let (_, g, _) = call(&svcs[0], post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Big"}))).await;
        let gid = g["id"].as_str().expect("id").to_owned();
        let mut tasks = Vec::new();
        for t in 0..16usize {
            let svcs = svcs.clone();
            let gid = gid.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100usize {
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": format!("t{t}-m{i}")}]}]});
                    let svc = &svcs[(t + i) % svcs.len()];
                    let req = Request::new("PATCH", &format!("/Groups/{gid}?excludedAttributes=members")).with_json(&op);
                    let (code, body) = status(svc, req).await;
                    assert_eq!(code, 200, "{body}");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let (_, g, _) = call(&svcs[1], Request::new("GET", &format!("/Groups/{gid}"))).await;
        assert_eq!(g["members"].as_array().map(Vec::len), Some(1_600));
        assert_eq!(g["meta"]["version"], "W/\"1601\"");
        // One event per add, from every instance, in commit order.
        let events = events_of(&svcs[2]).await;
        assert_eq!(events.len(), 1 + 1_600);
        assert_eq!(
            versions_of(&events, &gid),
            (1..=1_601).collect::<Vec<u64>>()
        );
    }

    /// PATCHes without If-Match from 8 clients through 2 instances: races are
    /// retried on the fresh version, and each write that committed has one event.
    async fn retried_writes(scratch: Scratch) {
        let svcs = instances(&scratch, 2).await;
        let (_, u, _) = call(&svcs[0], post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "retry"}))).await;
        let uid = u["id"].as_str().expect("id").to_owned();
        let mut tasks = Vec::new();
        for c in 0..8usize {
            let svcs = svcs.clone();
            let uid = uid.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20usize {
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": format!("c{c}-{i}")}]});
                    let req = Request::new("PATCH", &format!("/Users/{uid}")).with_json(&op);
                    let (code, body) = status(&svcs[(c + i) % 2], req).await;
                    assert_eq!(code, 200, "{body}");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let events = events_of(&svcs[0]).await;
        assert_eq!(events.len(), 1 + 160);
        assert_eq!(versions_of(&events, &uid), (1..=161).collect::<Vec<u64>>());
    }

    /// Writes of many users from 3 instances while consumers of two more read on
    /// from their last sequence all along: each sees every event once, in
    /// increasing sequences with no gap, each user's in version order, and both see
    /// the same log. (On PostgreSQL events are numbered by their readers once
    /// committed, so the two readers also race to number them.)
    async fn events_read_during_writes(scratch: Scratch) {
        let svcs = instances(&scratch, 5).await;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let consumer = |svc: Svc, name: &'static str| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut seen: Vec<scimkit::events::StoredEvent<String>> = Vec::new();
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                    let last = seen.last().map_or(0, |e| e.sequence);
                    let batch = svc
                        .store()
                        .read_events_after(name, last, 50)
                        .await
                        .expect("read");
                    if batch.is_empty() && finished {
                        return seen;
                    }
                    seen.extend(batch);
                    tokio::task::yield_now().await;
                }
            })
        };
        let first = consumer(Arc::clone(&svcs[3]), "first");
        let second = consumer(Arc::clone(&svcs[4]), "second");
        let mut tasks = Vec::new();
        for t in 0..12usize {
            let svc = Arc::clone(&svcs[t % 3]);
            tasks.push(tokio::spawn(async move {
                for i in 0..10usize {
                    let (code, u) = status(&svc, post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("w{t}-{i}")}))).await;
                    assert_eq!(code, 201, "{u}");
                    let id = u["id"].as_str().expect("id").to_owned();
                    for n in 0..3usize {
                        let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": format!("n{n}")}]});
                        let (code, body) = status(&svc, Request::new("PATCH", &format!("/Users/{id}")).with_json(&op)).await;
                        assert_eq!(code, 200, "{body}");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = first.await.expect("consumer");
        let other = second.await.expect("consumer");
        let log = |events: &[scimkit::events::StoredEvent<String>]| -> Vec<(u64, String)> {
            events
                .iter()
                .map(|e| (e.sequence, e.event.id.clone()))
                .collect()
        };
        assert_eq!(log(&seen), log(&other), "one log for every reader");
        let total = 12 * 10 * 4;
        let sequences: Vec<u64> = seen.iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (1..=total as u64).collect::<Vec<u64>>(),
            "every event once, no gap"
        );
        let mut ids: Vec<&str> = seen.iter().map(|e| e.event.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), total);
        let users: std::collections::BTreeSet<&str> =
            seen.iter().map(|e| e.event.resource_id.as_str()).collect();
        assert_eq!(users.len(), 120);
        for user in users {
            assert_eq!(versions_of(&seen, user), vec![1, 2, 3, 4], "{user}");
        }
        // A consumer that starts now reads the same log.
        assert_eq!(events_of(&svcs[0]).await.len(), total);
    }

    /// Two users trading names through two instances, both at once, again and
    /// again: each PATCH is 200 or 409 (never a 500, though the two writes may
    /// lock each other's claims), the names stay distinct, and the claims follow
    /// the names: each current name is taken, the names let go are free.
    async fn names_traded(scratch: Scratch) {
        let svcs = instances(&scratch, 2).await;
        let mut ids = Vec::new();
        for name in ["alice", "bob"] {
            let (code, u) = status(&svcs[0], post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}))).await;
            assert_eq!(code, 201, "{u}");
            ids.push(u["id"].as_str().expect("id").to_owned());
        }
        let rename = |svc: Svc, id: String, name: String| {
            tokio::spawn(async move {
                let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "userName", "value": name}]});
                status(
                    &svc,
                    Request::new("PATCH", &format!("/Users/{id}")).with_json(&op),
                )
                .await
            })
        };
        for round in 0..40usize {
            let (a, b) = if round % 2 == 0 {
                ("bob", "alice")
            } else {
                ("carol", "bob")
            };
            let first = rename(Arc::clone(&svcs[0]), ids[0].clone(), a.to_owned());
            let second = rename(Arc::clone(&svcs[1]), ids[1].clone(), b.to_owned());
            for task in [first, second] {
                let (code, body) = task.await.expect("task");
                assert!(code == 200 || code == 409, "{code} {body}");
            }
        }
        let mut names = Vec::new();
        for id in &ids {
            let (_, u) = status(&svcs[1], Request::new("GET", &format!("/Users/{id}"))).await;
            names.push(u["userName"].as_str().expect("userName").to_owned());
        }
        assert_ne!(names[0], names[1]);
        for name in ["alice", "bob", "carol"] {
            let (code, body) = status(&svcs[0], post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}))).await;
            let expected = if names.iter().any(|n| n == name) {
                409
            } else {
                201
            };
            assert_eq!(code, expected, "{name} with {names:?}: {body}");
        }
    }

    /// Conditional PATCHes from 8 clients through 2 instances: each version is
    /// written once; the others get 412, never a 5xx, and nothing is lost.
    async fn if_match(scratch: Scratch) {
        let svcs = instances(&scratch, 2).await;
        let (_, u, _) = call(&svcs[0], post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "race"}))).await;
        let uid = u["id"].as_str().expect("id").to_owned();
        let mut tasks = Vec::new();
        for c in 0..8usize {
            let svcs = svcs.clone();
            let uid = uid.clone();
            tasks.push(tokio::spawn(async move {
                let svc = &svcs[c % 2];
                let (mut won, mut lost) = (0, 0);
                for i in 0..20usize {
                    let (_, user) = status(svc, Request::new("GET", &format!("/Users/{uid}"))).await;
                    let etag = user["meta"]["version"].as_str().expect("version").to_owned();
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": format!("c{c}-{i}")}]});
                    let req = Request::new("PATCH", &format!("/Users/{uid}"))
                        .with_header("If-Match", &etag)
                        .with_json(&op);
                    match status(svc, req).await {
                        (200, _) => won += 1,
                        (412, _) => lost += 1,
                        (code, body) => panic!("{code}: {body}"),
                    }
                }
                (won, lost)
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += t.await.expect("task").0;
        }
        let (_, user, _) = call(&svcs[1], Request::new("GET", &format!("/Users/{uid}"))).await;
        // Every successful write made exactly one version, and one event; a 412
        // made none.
        assert_eq!(user["meta"]["version"], format!("W/\"{}\"", won + 1));
        let events = events_of(&svcs[0]).await;
        assert_eq!(
            versions_of(&events, &uid),
            (1..=won as u64 + 1).collect::<Vec<u64>>()
        );
    }

    /// The same userName created through every instance at once: one 201, the
    /// rest 409 `uniqueness`.
    async fn one_user_name(scratch: Scratch) {
        let svcs = instances(&scratch, 3).await;
        for round in 0..10 {
            let mut tasks = Vec::new();
            for svc in &svcs {
                let svc = Arc::clone(svc);
                tasks.push(tokio::spawn(async move {
                    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("Same{round}@example.com")});
                    status(&svc, post("/Users", &body)).await
                }));
            }
            let mut codes = Vec::new();
            for t in tasks {
                let (code, body) = t.await.expect("task");
                if code == 409 {
                    assert_eq!(body["scimType"], "uniqueness", "{body}");
                }
                codes.push(code);
            }
            codes.sort_unstable();
            assert_eq!(codes, [201, 409, 409], "round {round}");
        }
        // A 409 is no event.
        assert_eq!(events_of(&svcs[0]).await.len(), 10);
    }

    /// Users deleted through one instance while another adds members to the groups
    /// they are in: no 5xx (a deadlock is retried), and no deleted user stays listed.
    async fn deletes_beside_member_adds(scratch: Scratch) {
        let svcs = instances(&scratch, 2).await;
        let mut users = Vec::new();
        for n in 0..30 {
            let (_, u, _) = call(&svcs[0], post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{n}")}))).await;
            users.push(u["id"].as_str().expect("id").to_owned());
        }
        let mut groups = Vec::new();
        for n in 0..3 {
            let members: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
            let (_, g, _) = call(&svcs[0], post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("g{n}"), "members": members}))).await;
            groups.push(g["id"].as_str().expect("id").to_owned());
        }
        let deleter = {
            let (svc, users) = (Arc::clone(&svcs[0]), users.clone());
            tokio::spawn(async move {
                for u in users {
                    let (code, body) =
                        status(&svc, Request::new("DELETE", &format!("/Users/{u}"))).await;
                    assert_eq!(code, 204, "{body}");
                }
            })
        };
        let adder = {
            let (svc, groups) = (Arc::clone(&svcs[1]), groups.clone());
            tokio::spawn(async move {
                for i in 0..60usize {
                    let g = &groups[i % groups.len()];
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": format!("new-{i}")}]}]});
                    let req =
                        Request::new("PATCH", &format!("/Groups/{g}?excludedAttributes=members"))
                            .with_json(&op);
                    let (code, body) = status(&svc, req).await;
                    assert_eq!(code, 200, "{body}");
                }
            })
        };
        deleter.await.expect("deleter");
        adder.await.expect("adder");
        for g in &groups {
            let (_, g, _) = call(&svcs[1], Request::new("GET", &format!("/Groups/{g}"))).await;
            let members = g["members"].as_array().cloned().unwrap_or_default();
            assert_eq!(members.len(), 20, "{g}");
            assert!(
                members
                    .iter()
                    .all(|m| m["value"].as_str().is_some_and(|v| v.starts_with("new-")))
            );
        }
        // Each deletion is a Deleted event and a MembersRemoved for each of its
        // three groups; each group's events follow its versions.
        use scimkit::events::EventKind;
        let events = events_of(&svcs[0]).await;
        let count =
            |f: &dyn Fn(&EventKind) -> bool| events.iter().filter(|e| f(&e.event.kind)).count();
        assert_eq!(count(&|k| matches!(k, EventKind::Deleted)), 30);
        assert_eq!(
            count(&|k| matches!(k, EventKind::MembersRemoved { .. })),
            90
        );
        assert_eq!(count(&|k| matches!(k, EventKind::MembersAdded { .. })), 60);
        for g in &groups {
            // Created, 30 members removed, 20 added.
            assert_eq!(versions_of(&events, g), (1..=51).collect::<Vec<u64>>());
        }
    }
}

mod member_rows {
    //! A PATCH that does not touch `members` neither rewrites nor deletes a member
    //! row, whatever the group's size; one that does touches only the rows it names.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::service::Request;
    use serde_json::json;

    /// Counts writes to `scim_members` with triggers in a SQLite file.
    fn count_writes(path: &std::path::Path) -> rusqlite::Connection {
        let db = rusqlite::Connection::open(path).expect("open");
        db.execute_batch(
            "CREATE TABLE member_writes (n INTEGER NOT NULL); INSERT INTO member_writes VALUES (0);
             CREATE TRIGGER mw_i AFTER INSERT ON scim_members BEGIN UPDATE member_writes SET n = n + 1; END;
             CREATE TRIGGER mw_u AFTER UPDATE ON scim_members BEGIN UPDATE member_writes SET n = n + 1; END;
             CREATE TRIGGER mw_d AFTER DELETE ON scim_members BEGIN UPDATE member_writes SET n = n + 1; END;",
        )
        .expect("triggers");
        db
    }

    fn writes(db: &rusqlite::Connection) -> i64 {
        db.query_row("SELECT n FROM member_writes", [], |r| r.get(0))
            .expect("count")
    }

    #[tokio::test]
    async fn rename_and_member_changes_touch_only_what_they_change() {
        let (_scratch, path, svc) = Scratch::file_service().await;
        let path = &path;
        let members: Vec<_> = (0..2_000)
            .map(|i| json!({"value": format!("m{i}")}))
            .collect();
        let (status, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Big", "members": members}))).await;
        assert_eq!(status, 201, "{g}");
        let gid = g["id"].as_str().expect("id").to_owned();
        let db = count_writes(path);
        let patch = |ops: serde_json::Value| {
            Request::new("PATCH", &format!("/Groups/{gid}?excludedAttributes=members"))
                .with_json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}))
        };
        // Entra's rename, and Okta's no-path replace of displayName.
        let (status, body, _) = call(
            &svc,
            patch(json!([{"op": "Replace", "path": "displayName", "value": "Bigger"}])),
        )
        .await;
        assert_eq!(
            (status, &body["displayName"]),
            (200, &json!("Bigger")),
            "{body}"
        );
        assert!(body.get("members").is_none());
        let (status, _, _) = call(
            &svc,
            patch(json!([{"op": "replace", "value": {"id": gid, "displayName": "Biggest"}}])),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(writes(&db), 0, "a rename wrote member rows");
        // One member in, one out: two rows.
        let (status, _, _) = call(&svc, patch(json!([{"op": "add", "path": "members", "value": [{"value": "new"}]}, {"op": "remove", "path": "members[value eq \"m7\"]"}]))).await;
        assert_eq!(status, 200);
        assert_eq!(writes(&db), 2);
        let (_, g, _) = call(&svc, Request::new("GET", &format!("/Groups/{gid}"))).await;
        assert_eq!(g["displayName"], "Biggest");
        let list = g["members"].as_array().expect("members");
        assert_eq!(list.len(), 2_000);
        assert!(list.iter().any(|m| m["value"] == "new"));
        assert!(!list.iter().any(|m| m["value"] == "m7"));
        assert_eq!(g["meta"]["version"], "W/\"4\"");
    }
}

mod key_columns {
    //! On SQLite, the columns that hold the attributes resources are looked up by
    //! stay equal to the comparison document through every kind of write, and a
    //! write rewrites only the columns (and so the indexes) whose value changed.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::service::Request;
    use serde_json::{Value, json};

    const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    /// Rows whose key columns differ from their documents.
    fn out_of_step(db: &rusqlite::Connection) -> i64 {
        db.query_row(
            "SELECT count(*) FROM scim_resources WHERE \
             k_user_name IS NOT json_extract(cmp, '$.\"userName\"') \
             OR k_external_id IS NOT json_extract(cmp, '$.\"externalId\"') \
             OR k_display_name IS NOT json_extract(cmp, '$.\"displayName\"') \
             OR k_id IS NOT json_extract(cmp, '$.\"id\"') OR k_id IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("count")
    }

    /// How many times each key column was written, counted by triggers.
    fn key_writes(db: &rusqlite::Connection) -> Vec<i64> {
        ["k_user_name", "k_external_id", "k_display_name", "k_id"]
            .iter()
            .map(|c| {
                db.query_row(
                    &format!("SELECT n FROM key_writes WHERE k = '{c}'"),
                    [],
                    |r| r.get(0),
                )
                .expect("count")
            })
            .collect()
    }

    async fn ids<S: scimkit::store::Store<Context = String>>(
        svc: &Service<S>,
        path: &str,
        filter: &str,
    ) -> Vec<String> {
        listed(svc, path, filter, "id").await
    }

    #[tokio::test]
    async fn stay_in_step_and_are_written_only_when_they_change() {
        let scratch = Scratch::file();
        let Scratch::File(path) = &scratch else {
            unreachable!()
        };
        let svc = Service::new(scratch.store().await, ServiceConfig::default()).with_clock(clock());
        let mut users = Vec::new();
        for i in 0..3 {
            let (status, u, _) = call(&svc, post("/Users", &json!({"schemas": [USER], "userName": format!("user{i}"), "externalId": format!("ext{i}"), "displayName": format!("User {i}")}))).await;
            assert_eq!(status, 201, "{u}");
            users.push(u["id"].as_str().expect("id").to_owned());
        }
        let (status, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Staff", "members": [{"value": users[0]}, {"value": users[1]}]}))).await;
        assert_eq!(status, 201, "{g}");
        let gid = g["id"].as_str().expect("id").to_owned();
        let db = rusqlite::Connection::open(path).expect("open");
        assert_eq!(out_of_step(&db), 0, "after creates");
        db.execute_batch(
            "CREATE TABLE key_writes (k TEXT PRIMARY KEY, n INTEGER NOT NULL);
             INSERT INTO key_writes VALUES ('k_user_name', 0), ('k_external_id', 0), ('k_display_name', 0), ('k_id', 0);
             CREATE TRIGGER kw_u AFTER UPDATE OF k_user_name ON scim_resources BEGIN UPDATE key_writes SET n = n + 1 WHERE k = 'k_user_name'; END;
             CREATE TRIGGER kw_e AFTER UPDATE OF k_external_id ON scim_resources BEGIN UPDATE key_writes SET n = n + 1 WHERE k = 'k_external_id'; END;
             CREATE TRIGGER kw_d AFTER UPDATE OF k_display_name ON scim_resources BEGIN UPDATE key_writes SET n = n + 1 WHERE k = 'k_display_name'; END;
             CREATE TRIGGER kw_i AFTER UPDATE OF k_id ON scim_resources BEGIN UPDATE key_writes SET n = n + 1 WHERE k = 'k_id'; END;",
        )
        .expect("triggers");
        let patch = |path: String, ops: Value| {
            Request::new("PATCH", &path).with_json(
                &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
            )
        };
        // A change of title leaves every key column alone.
        let user0 = format!("/Users/{}", users[0]);
        let (status, body, _) = call(
            &svc,
            patch(
                user0.clone(),
                json!([{"op": "replace", "path": "title", "value": "Boss"}]),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(key_writes(&db), [0, 0, 0, 0]);
        // A new displayName writes that column only.
        let (status, body, _) = call(
            &svc,
            patch(
                user0.clone(),
                json!([{"op": "replace", "path": "displayName", "value": "Ada"}]),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(key_writes(&db), [0, 0, 1, 0]);
        // A rename and a new externalId by PUT.
        let (status, body, _) = call(&svc, Request::new("PUT", &user0).with_json(&json!({"schemas": [USER], "userName": "Ada.Lovelace", "externalId": "EXT-A", "displayName": "Ada"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(key_writes(&db), [1, 1, 1, 0]);
        // Member changes and a member's deletion change the group's document
        // (meta.lastModified), never its key columns.
        let (status, body, _) = call(
            &svc,
            patch(
                format!("/Groups/{gid}"),
                json!([{"op": "add", "path": "members", "value": [{"value": users[2]}]}]),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, _, _) = call(
            &svc,
            Request::new("DELETE", &format!("/Users/{}", users[1])),
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(key_writes(&db), [1, 1, 1, 0]);
        assert_eq!(out_of_step(&db), 0, "after updates");
        // Look-ups through the key columns see the new values, not the old.
        assert_eq!(
            ids(&svc, "/Users", r#"userName eq "ada.lovelace""#).await,
            [users[0].clone()]
        );
        assert!(
            ids(&svc, "/Users", r#"userName eq "user0""#)
                .await
                .is_empty()
        );
        assert_eq!(
            ids(&svc, "/Users", r#"externalId eq "EXT-A""#).await,
            [users[0].clone()]
        );
        assert!(
            ids(&svc, "/Users", r#"externalId eq "ext-a""#)
                .await
                .is_empty(),
            "externalId is case-exact"
        );
        assert_eq!(
            ids(&svc, "/Users", r#"displayName sw "ad""#).await,
            [users[0].clone()]
        );
        assert_eq!(
            ids(&svc, "/Users", &format!(r#"id eq "{}""#, users[2])).await,
            [users[2].clone()]
        );
        assert_eq!(
            ids(&svc, "/Groups", r#"displayName eq "staff""#).await,
            [gid]
        );
        // A row written without its key columns (an older binary, a bulk load)
        // gets them on insert.
        db.execute(
            "INSERT INTO scim_resources (tenant, resource_type, id, id_key, version, member_count, \
             next_position, resource, cmp) SELECT tenant, resource_type, 'copied', 'copied', version, \
             member_count, next_position, json_set(resource, '$.id', 'copied', '$.userName', 'Copied'), \
             json_set(cmp, '$.id', 'copied', '$.userName', 'copied') FROM scim_resources WHERE id = ?1",
            [&users[2]],
        )
        .expect("insert");
        assert_eq!(out_of_step(&db), 0, "after a plain insert");
        assert_eq!(
            ids(&svc, "/Users", r#"userName eq "COPIED""#).await,
            ["copied"]
        );
    }
}

mod member_filters {
    //! Group filters naming members, answered from the member table, select what
    //! `MemoryStore` (the evaluator) selects.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::store::{MemoryStore, Store};
    use serde_json::{Value, json};

    const FILTERS: &[&str] = &[
        r#"members[value eq "u1"]"#,
        r#"members[value eq "U1"]"#,
        r#"members.value eq "u2""#,
        r#"members eq "u3""#,
        r#"members[value eq "u1"] or members[value eq "u4"]"#,
        r#"members[value eq "u1"] and displayName sw "g""#,
        r#"members pr"#,
        r#"not (members pr)"#,
        r#"members[value eq "nobody"]"#,
        r#"members[value ne "u1"]"#,
        r#"members.value co "u""#,
        r#"displayName eq "g1" or members[value eq "u2"]"#,
    ];

    async fn names<S: Store<Context = String>>(svc: &Service<S>, filter: &str) -> Vec<String> {
        listed(svc, "/Groups?sortBy=displayName", filter, "displayName").await
    }

    async fn load<S: Store<Context = String>>(svc: &Service<S>) {
        let groups: [(&str, &[&str]); 5] = [
            ("g1", &["u1", "u2"]),
            ("g2", &["U1"]),
            ("g3", &["u3", "u4", "u2"]),
            ("g4", &[]),
            ("h5", &["u1"]),
        ];
        for (name, members) in groups {
            let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
            let (status, body, _) = call(svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members}))).await;
            assert_eq!(status, 201, "{body}");
        }
    }

    async fn compare(scratch: Scratch) {
        let config = || {
            let mut c = ServiceConfig::default();
            c.check_references = false;
            c
        };
        let sql = Service::new(scratch.store().await, config()).with_clock(clock());
        let memory = Service::new(MemoryStore::<String>::new(), config()).with_clock(clock());
        load(&sql).await;
        load(&memory).await;
        for filter in FILTERS {
            assert_eq!(
                names(&sql, filter).await,
                names(&memory, filter).await,
                "{filter}"
            );
        }
    }

    #[tokio::test]
    async fn on_sqlite() {
        compare(Scratch::Memory).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            compare(scratch).await;
        }
    }
}

mod plans {
    //! The look-ups identity providers make are index look-ups on both databases
    //! (after `analyze`, as after any bulk import).
    use super::*;
    use scimkit::filter::Filter;
    use scimkit::store::{ListQuery, Projection, Record, Store, UniqueValue};
    use serde_json::json;

    async fn seed(store: &SqlStore<String>) {
        let ctx = "acme".to_owned();
        for n in 0..2_000usize {
            let id = format!("user-{n:05}");
            let user = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id,
                "userName": format!("user{n}@example.com"), "externalId": format!("ext-{n}"),
                "emails": [{"value": format!("user{n}@example.org"), "type": "work"}],
                "meta": {"resourceType": "User", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"}
            });
            let unique = [UniqueValue {
                attribute: "userName".into(),
                value: format!("user{n}@example.com"),
            }];
            store
                .create(
                    &ctx,
                    "User",
                    Record {
                        id,
                        version: 1,
                        resource: user,
                    },
                    &unique,
                    &[],
                )
                .await
                .expect("user");
        }
        for n in 0..200usize {
            let id = format!("group-{n:04}");
            let members: Vec<_> = (0..10)
                .map(|m| json!({"value": format!("user-{:05}", n * 10 + m)}))
                .collect();
            let group = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": id,
                "displayName": format!("Group {n}"), "members": members,
                "meta": {"resourceType": "Group", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"}
            });
            store
                .create(
                    &ctx,
                    "Group",
                    Record {
                        id,
                        version: 1,
                        resource: group,
                    },
                    &[],
                    &[],
                )
                .await
                .expect("group");
        }
        store.analyze().await.expect("analyze");
    }

    /// Each look-up, and a word its plan must contain.
    const LOOKUPS: &[(&str, &str, &str, &str)] = &[
        // resource type, filter, PostgreSQL plan, SQLite plan
        (
            "User",
            r#"userName eq "USER42@example.com""#,
            "scim_resources_user_name",
            "scim_resources_user_name",
        ),
        (
            "User",
            r#"userName sw "user424""#,
            "scim_resources_user_name",
            "scim_resources_user_name",
        ),
        (
            "User",
            r#"externalId eq "ext-42""#,
            "scim_resources_cmp",
            "scim_resources_external_id",
        ),
        (
            "User",
            r#"id eq "user-00042""#,
            "scim_resources_pkey",
            "scim_resources_cmp_id",
        ),
        (
            "User",
            r#"emails[value eq "user42@example.org"]"#,
            "scim_resources_cmp",
            "USING",
        ),
        (
            "Group",
            r#"displayName eq "Group 42""#,
            "scim_resources_cmp",
            "scim_resources_display_name",
        ),
        (
            "Group",
            r#"members[value eq "user-00042"]"#,
            "scim_members",
            "scim_members",
        ),
    ];

    /// The first page of 100 resources `filter` selects, counted.
    fn first_page<'q>(
        schema: scimkit::schema::ResourceSchema<'q>,
        filter: &'q Filter,
        projection: &'q Projection,
    ) -> ListQuery<'q> {
        ListQuery {
            schema,
            filter: Some(filter),
            sort: None,
            start_index: 1,
            count: 100,
            after: None,
            count_total: true,
            projection,
        }
    }

    async fn check(scratch: Scratch, postgres: bool) {
        let store = scratch.store().await;
        seed(&store).await;
        let registry = Registry::core();
        let projection = Projection::all();
        for (rt, text, pg, sqlite) in LOOKUPS {
            let schema = registry.resource_type(rt).expect("type");
            let filter: Filter = text.parse().expect("filter");
            let query = first_page(schema, &filter, &projection);
            let plan = store
                .explain(&"acme".to_owned(), rt, &query)
                .await
                .expect("explain");
            let want = if postgres { pg } else { sqlite };
            assert!(plan.contains(want), "{text}: no {want} in\n{plan}");
            assert!(
                !plan.contains("Seq Scan"),
                "{text}: a sequential scan in\n{plan}"
            );
            let page = store
                .list(&"acme".to_owned(), rt, &query)
                .await
                .expect("list");
            assert_eq!(page.total_results, 1, "{text}");
            if *rt == "Group" {
                // Its members come with it.
                let members = page.records[0].resource["members"].as_array().map(Vec::len);
                assert_eq!(members, Some(10), "{text}");
            }
        }
        // PostgreSQL's GIN index leaves out id, userName and meta (migration 9):
        // comparisons on them are answered without it, and select what they did.
        let users = registry.resource_type("User").expect("type");
        for (text, total) in [
            (r#"meta.resourceType eq "User""#, 2_000),
            (r#"meta.created eq "2024-05-13T04:42:34Z""#, 2_000),
            (
                r#"meta.resourceType eq "User" and externalId eq "ext-7""#,
                1,
            ),
            (
                r#"id eq "user-00007" or userName eq "USER8@example.com""#,
                2,
            ),
            (
                r#"emails[value eq "user9@example.org"] and id eq "user-00009""#,
                1,
            ),
            (r#"id sw "user-0001" and meta.resourceType ne "Group""#, 10),
        ] {
            let filter: Filter = text.parse().expect("filter");
            let query = first_page(users, &filter, &projection);
            let page = store
                .list(&"acme".to_owned(), "User", &query)
                .await
                .expect("list");
            assert_eq!(page.total_results, total, "{text}");
        }
        // A look-up's rows are projected as a counted page's are.
        let without_emails = Projection {
            attributes: Vec::new(),
            excluded: vec![scimkit::path::AttrPath::parse("emails").expect("path")],
        };
        let filter: Filter = r#"userName eq "user42@example.com""#.parse().expect("filter");
        let query = first_page(users, &filter, &without_emails);
        let page = store
            .list(&"acme".to_owned(), "User", &query)
            .await
            .expect("list");
        assert_eq!(page.total_results, 1);
        let user = &page.records[0].resource;
        assert!(user.get("emails").is_none(), "{user}");
        assert_eq!(user["userName"], "user42@example.com");
        // A deep cursor page starts from the primary key's order, not a scan.
        let schema = registry.resource_type("User").expect("type");
        let query = ListQuery {
            schema,
            filter: None,
            sort: None,
            start_index: 1,
            count: 11,
            after: Some("user-01900"),
            count_total: true,
            projection: &projection,
        };
        let plan = store
            .explain(&"acme".to_owned(), "User", &query)
            .await
            .expect("explain");
        let want = if postgres {
            "scim_resources_pkey"
        } else {
            "USING PRIMARY KEY (tenant=? AND resource_type=? AND id>?)"
        };
        assert!(plan.contains(want), "cursor page: no {want} in\n{plan}");
        assert!(
            !plan.contains("Seq Scan") && !plan.contains("TEMP B-TREE"),
            "{plan}"
        );
        let page = store
            .list(&"acme".to_owned(), "User", &query)
            .await
            .expect("list");
        assert_eq!(page.total_results, 2_000);
        assert_eq!(page.records.len(), 11);
        assert_eq!(page.records[0].id, "user-01901");
        // The last cursor page, short of `count`: the total still counts every match.
        let query = ListQuery {
            after: Some("user-01995"),
            ..query
        };
        let page = store
            .list(&"acme".to_owned(), "User", &query)
            .await
            .expect("list");
        assert_eq!(page.total_results, 2_000);
        assert_eq!(page.records.len(), 4);
        deep_pages_by_start_index(&store, postgres.then(|| scratch.url())).await;
        store.close().await;
    }

    /// A page after the first by `startIndex` is the slice of the whole ordered
    /// listing, filtered or not, in either order; on PostgreSQL the rows it skips
    /// are counted in the primary key, not read (`postgres`: the database's URL).
    async fn deep_pages_by_start_index(store: &SqlStore<String>, postgres: Option<String>) {
        use scimkit::SortOrder;
        use scimkit::path::AttrPath;
        use scimkit::store::Sort;
        let ctx = "acme".to_owned();
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("type");
        let projection = Projection::all();
        let filter: Filter = r#"userName sw "user1""#.parse().expect("filter");
        let by = |path, order| Sort {
            by: AttrPath::parse(path).expect("path"),
            order,
        };
        // `title` no user has: every key ties (and is null), the id decides.
        let sorts = [
            None,
            Some(by("userName", SortOrder::Ascending)),
            Some(by("userName", SortOrder::Descending)),
            Some(by("title", SortOrder::Ascending)),
            Some(by("title", SortOrder::Descending)),
        ];
        for filter in [None, Some(&filter)] {
            for sort in &sorts {
                let query = |start_index, count| ListQuery {
                    schema,
                    filter,
                    sort: sort.as_ref(),
                    start_index,
                    count,
                    after: None,
                    count_total: true,
                    projection: &projection,
                };
                let ids = |page: scimkit::store::Page| {
                    page.records.into_iter().map(|r| r.id).collect::<Vec<_>>()
                };
                let whole = store
                    .list(&ctx, "User", &query(1, 2_000))
                    .await
                    .expect("list");
                let total = whole.total_results;
                let whole = ids(whole);
                assert_eq!(whole.len(), total, "{filter:?} {sort:?}");
                // A first page short of `count` is told its total by its rows; a
                // full one is counted.
                for count in [total - 1, total, total + 1] {
                    let page = store
                        .list(&ctx, "User", &query(1, count))
                        .await
                        .expect("list");
                    assert_eq!(page.total_results, total, "count {count}");
                    assert_eq!(ids(page), whole[..count.min(total)], "count {count}");
                }
                for start in [2, 500, total - 3, total + 1] {
                    let page = store
                        .list(&ctx, "User", &query(start, 7))
                        .await
                        .expect("list");
                    assert_eq!(page.total_results, total);
                    let expected: Vec<String> =
                        whole.iter().skip(start - 1).take(7).cloned().collect();
                    assert_eq!(ids(page), expected, "{filter:?} {sort:?} from {start}");
                }
            }
        }
        if let Some(url) = postgres {
            // As autovacuum would: the visibility map lets the primary key answer alone.
            std::thread::spawn(move || {
                let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
                db.batch_execute("VACUUM scim_resources").expect("vacuum");
            })
            .join()
            .expect("thread");
            let query = ListQuery {
                schema,
                filter: None,
                sort: None,
                start_index: 1_901,
                count: 11,
                after: None,
                count_total: true,
                projection: &projection,
            };
            let plan = store.explain(&ctx, "User", &query).await.expect("explain");
            assert!(
                plan.contains("Index Only Scan using scim_resources_pkey"),
                "{plan}"
            );
        }
    }

    #[tokio::test]
    async fn on_sqlite() {
        check(Scratch::file(), false).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            check(scratch, true).await;
        }
    }

    /// A look-up by id is one on the primary key from the first write on, before
    /// ANALYZE has measured anything: no index that orders ids otherwise can be
    /// planned instead with the id as a filter (a scan of the tenant).
    #[tokio::test]
    async fn ids_are_looked_up_by_key_before_any_analyze_on_postgres() {
        let Some(scratch) = Scratch::postgres() else {
            return;
        };
        let store = scratch.store().await;
        seed(&store).await;
        let url = scratch.url();
        let plan = std::thread::spawn(move || {
            let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
            // What seeding's ANALYZE measured is forgotten.
            db.batch_execute(
                "DELETE FROM pg_statistic WHERE starelid = 'scim_resources'::regclass; \
                 UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE relname = 'scim_resources'",
            )
            .expect("forget statistics");
            let rows = db
                .query(
                    "EXPLAIN SELECT version, resource FROM scim_resources \
                     WHERE tenant = $1 AND resource_type = $2 AND id = $3",
                    &[&"acme", &"User", &"user-00042"],
                )
                .expect("explain");
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .join()
        .expect("thread");
        assert!(plan.contains("scim_resources_pkey"), "{plan}");
        assert!(!plan.contains("Filter"), "{plan}");
        store.close().await;
    }

    /// The samples of single values SQLite's `ANALYZE` takes (`sqlite_stat4`) of
    /// the tables the store looks resources up in, in the database file at `path`.
    fn samples(path: &std::path::Path) -> i64 {
        let db = rusqlite::Connection::open(path).expect("open");
        let exists: bool = db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat4')",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        if !exists {
            return 0;
        }
        db.query_row(
            "SELECT count(*) FROM sqlite_stat4 \
             WHERE tbl IN ('scim_resources', 'scim_members', 'scim_unique')",
            [],
            |r| r.get(0),
        )
        .expect("count")
    }

    /// A look-up by userName of the shape the store makes, run on `db` once for
    /// each of `names`; returns how many times SQLite prepared it again meanwhile.
    fn reprepared(db: &rusqlite::Connection, names: &[&str]) -> i32 {
        let mut stmt = db
            .prepare_cached(
                "SELECT id, version, resource FROM scim_resources WHERE tenant = ?1 \
                 AND resource_type = ?2 AND (k_user_name = ?3) ORDER BY id ASC LIMIT 100",
            )
            .expect("prepare");
        let before = stmt.get_status(rusqlite::StatementStatus::RePrepare);
        for name in names {
            let found = stmt
                .query_map(rusqlite::params!["acme", "User", name], |r| {
                    r.get::<_, String>(0)
                })
                .expect("query")
                .count();
            assert_eq!(found, 1, "{name}");
        }
        stmt.get_status(rusqlite::StatementStatus::RePrepare) - before
    }

    /// On SQLite the store keeps the planner's averages of its tables and no
    /// samples of single values, with which SQLite plans a look-up again each time
    /// new values are bound to it: neither after its own `analyze` nor, from the
    /// next start on, after an `ANALYZE` run outside it; and other connections read
    /// the statistics again.
    #[tokio::test]
    async fn sqlite_keeps_averages_and_no_samples() {
        let scratch = Scratch::file();
        let Scratch::File(path) = &scratch else {
            unreachable!("a file")
        };
        let store = scratch.store().await;
        seed(&store).await;
        assert_eq!(samples(path), 0);
        let measured: String = rusqlite::Connection::open(path)
            .expect("open")
            .query_row(
                "SELECT stat FROM sqlite_stat1 WHERE idx = 'scim_resources_user_name'",
                [],
                |r| r.get(0),
            )
            .expect("averages");
        assert!(measured.starts_with("2200 "), "{measured}");
        store.close().await;

        // Samples taken outside the store: each new userName is planned again.
        let other = rusqlite::Connection::open(path).expect("open");
        other.execute_batch("ANALYZE").expect("analyze");
        assert!(samples(path) > 0, "SQLite takes samples here");
        let db = rusqlite::Connection::open(path).expect("open");
        let names = [
            "user1@example.com",
            "user2@example.com",
            "user3@example.com",
        ];
        assert!(reprepared(&db, &names) >= 2, "with samples");

        // The next start deletes them, and the connection left open reads the
        // statistics again at its next statement: a look-up it prepares after that
        // keeps its plan for every userName. (One prepared while it held samples
        // goes on being planned again until it is dropped: SQLite keeps which
        // values it depends on.)
        let store = scratch.store().await;
        assert_eq!(samples(path), 0);
        let next_statement = |db: &rusqlite::Connection| {
            db.execute_batch("SELECT 1 FROM scim_resources LIMIT 1")
                .expect("a statement");
            db.flush_prepared_statement_cache();
        };
        next_statement(&db);
        assert_eq!(reprepared(&db, &names), 0);

        // So does the store's own `analyze`, run while the connection is open.
        other.execute_batch("ANALYZE").expect("analyze");
        db.execute_batch("ANALYZE sqlite_schema")
            .expect("read the statistics");
        db.flush_prepared_statement_cache();
        assert!(reprepared(&db, &names) >= 2, "with samples");
        store.analyze().await.expect("analyze");
        assert_eq!(samples(path), 0);
        next_statement(&db);
        assert_eq!(reprepared(&db, &names), 0);

        // The store's look-ups are as they were.
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("type");
        let projection = Projection::all();
        let filter: Filter = r#"userName eq "user42@example.com""#.parse().expect("filter");
        let query = first_page(schema, &filter, &projection);
        let page = store
            .list(&"acme".to_owned(), "User", &query)
            .await
            .expect("list");
        assert_eq!(page.total_results, 1);
        store.close().await;
    }

    /// Where most users have no externalId, or none has one, a look-up by an
    /// externalId (a first page, or one after a cursor) uses its index on SQLite,
    /// before `analyze` and after it (which keeps no samples of single values):
    /// the index leaves out the resources without one, which would otherwise make
    /// the planner expect as many matches as the type has and scan the tenant in
    /// id order.
    #[tokio::test]
    async fn sqlite_looks_up_an_external_id_by_its_index_when_few_users_have_one() {
        let scratch = Scratch::file();
        let store = scratch.store().await;
        let ctx = "acme".to_owned();
        let user = |n: usize, external: bool| {
            let mut user = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": format!("user-{n:05}"), "userName": format!("user{n}@example.com"),
                "meta": {"resourceType": "User", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"}
            });
            if external {
                user["externalId"] = json!(format!("ext-{n}"));
            }
            let unique = [UniqueValue {
                attribute: "userName".into(),
                value: format!("user{n}@example.com"),
            }];
            let record = Record {
                id: format!("user-{n:05}"),
                version: 1,
                resource: user,
            };
            (record, unique)
        };
        for n in 0..2_000usize {
            let (record, unique) = user(n, false);
            store
                .create(&ctx, "User", record, &unique, &[])
                .await
                .expect("user");
        }
        for n in 0..200usize {
            let group = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "id": format!("group-{n:04}"), "displayName": format!("Group {n}"),
                "meta": {"resourceType": "Group", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"}
            });
            let record = Record {
                id: format!("group-{n:04}"),
                version: 1,
                resource: group,
            };
            store
                .create(&ctx, "Group", record, &[], &[])
                .await
                .expect("group");
        }
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("type");
        let projection = Projection::all();
        let filter: Filter = r#"externalId eq "ext-2007""#.parse().expect("filter");
        let first = first_page(schema, &filter, &projection);
        let after = ListQuery {
            after: Some("user-00100"),
            ..first_page(schema, &filter, &projection)
        };
        for (round, found) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
            match round {
                1 | 3 => store.analyze().await.expect("analyze"),
                // One user, of 2,001, has an externalId.
                2 => {
                    let (record, unique) = user(2_007, true);
                    store
                        .create(&ctx, "User", record, &unique, &[])
                        .await
                        .expect("user");
                }
                _ => {}
            }
            for query in [&first, &after] {
                let plan = store.explain(&ctx, "User", query).await.expect("explain");
                assert!(
                    plan.contains("USING INDEX scim_resources_external_id"),
                    "round {round}\n{plan}"
                );
                let page = store.list(&ctx, "User", query).await.expect("list");
                assert_eq!(page.records.len(), found, "round {round}");
            }
        }
        store.close().await;
    }
}

mod patch_without_path {
    //! A PATCH without a path whose value names members by a dotted key
    //! (`members.display`) reaches the members, as with `MemoryStore`.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::service::Request;
    use scimkit::store::{MemoryStore, Store};
    use serde_json::{Value, json};

    async fn run<S: Store<Context = String>>(svc: &Service<S>) -> (u16, Value) {
        let (_, g, _) = call(svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"value": "a"}, {"value": "b"}]}))).await;
        let gid = g["id"].as_str().expect("id").to_owned();
        let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"members.display": "X"}}]});
        let (status, _, _) = call(
            svc,
            Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&op),
        )
        .await;
        let (_, g, _) = call(svc, Request::new("GET", &format!("/Groups/{gid}"))).await;
        (status, g["members"].clone())
    }

    #[tokio::test]
    async fn dotted_key_reaches_the_members() {
        let config = || {
            let mut c = ServiceConfig::default();
            c.check_references = false;
            c
        };
        let scratch = Scratch::Memory;
        let sql = Service::new(scratch.store().await, config()).with_clock(clock());
        let memory = Service::new(MemoryStore::<String>::new(), config()).with_clock(clock());
        assert_eq!(run(&sql).await, run(&memory).await);
    }
}

mod nul_characters {
    //! U+0000: PostgreSQL's text and jsonb cannot hold it, so there it is a clear 400,
    //! never a 500; SQLite stores it like any other character.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::service::Request;
    use serde_json::json;

    async fn run(store: SqlStore<String>, postgres: bool) {
        let svc = service(store);
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "nul", "displayName": "a\u{0}b"});
        let (status, created, _) = call(&svc, post("/Users", &body)).await;
        if postgres {
            assert_eq!(status, 400, "{created}");
            assert_eq!(created["scimType"], "invalidValue");
            assert!(
                created["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("U+0000"))
            );
        } else {
            assert_eq!(status, 201, "{created}");
        }
        let (status, _, _) = call(&svc, Request::new("GET", "/Users/a%00b")).await;
        assert_eq!(status, 404);
        let (status, _, _) = call(&svc, Request::new("DELETE", "/Users/a%00b")).await;
        assert_eq!(status, 404);
        for op in ["eq", "ne", "co", "sw", "gt"] {
            let (status, body, _) = call(
                &svc,
                Request::new(
                    "GET",
                    &format!("/Users?filter=displayName+{op}+%22a%00b%22"),
                ),
            )
            .await;
            // No stored value holds U+0000 on PostgreSQL: either answered as such,
            // or refused with a 400; never a 500.
            assert!(status == 200 || (postgres && status == 400), "{op}: {body}");
            if op == "eq" && !postgres {
                assert_eq!(body["totalResults"], 1);
            }
        }
        let (_, group, _) = call(
            &svc,
            post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"})),
        )
        .await;
        let gid = group["id"].as_str().expect("id");
        let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": "x\u{0}"}]}]});
        let (status, body, _) = call(
            &svc,
            Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&op),
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }

    #[tokio::test]
    async fn on_sqlite() {
        let scratch = Scratch::file();
        run(scratch.store().await, false).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let Some(scratch) = Scratch::postgres() else {
            return;
        };
        run(scratch.store().await, true).await;
    }
}

mod rename_answers {
    //! A rename of a group (written without reading its members) is not a member
    //! change: with `NoContentForMemberChanges` it still answers 200 and the group.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::service::{PatchResponse, Request};
    use serde_json::json;

    #[tokio::test]
    async fn a_rename_answers_200_and_a_member_add_204() {
        let scratch = Scratch::file();
        let config = ServiceConfig::default()
            .patch_response(PatchResponse::NoContentForMemberChanges)
            .check_references(false);
        let svc = Service::new(scratch.store().await, config);
        let (_, g, _) = call(&svc, post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"value": "a"}]}))).await;
        let gid = g["id"].as_str().expect("id");
        let patch = |ops: serde_json::Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "H"}]));
        let (status, body, _) = call(
            &svc,
            Request::new(
                "PATCH",
                &format!("/Groups/{gid}?excludedAttributes=members"),
            )
            .with_json(&rename),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["displayName"], "H");
        assert!(body.get("members").is_none());
        let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": "b"}]}]));
        let (status, _, resp) = call(
            &svc,
            Request::new("PATCH", &format!("/Groups/{gid}")).with_json(&add),
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(resp.header("ETag"), Some("W/\"3\""));
    }
}

mod unread_events {
    //! Events no consumer reads still go when they are old (the server always
    //! writes events, and reads them only when it has a webhook).
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::events::EventLog;
    use serde_json::json;

    async fn run(scratch: Scratch) {
        let svc = service(scratch.store().await);
        for name in ["a", "b", "c"] {
            let (code, _, _) = call(&svc, post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}))).await;
            assert_eq!(code, 201);
        }
        let store = svc.store();
        assert_eq!(store.event_backlog("nobody").await.expect("backlog"), 3);
        let later = chrono::Utc::now() + chrono::Duration::days(1);
        assert_eq!(store.prune_events(later).await.expect("prune"), 3);
        assert_eq!(store.event_backlog("nobody").await.expect("backlog"), 0);
        assert!(
            store
                .read_events("late", 100)
                .await
                .expect("read")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn on_sqlite() {
        run(Scratch::file()).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            run(scratch).await;
        }
    }
}

mod stricter_default_isolation {
    //! A database whose default isolation is SERIALIZABLE: concurrent PATCHes of one
    //! user from four instances all succeed, each on the version it read. (The store
    //! asks for READ COMMITTED on its connections, so that a write re-checks the
    //! version it waited for; a serialization failure would be retried anyway.)
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::service::Request;
    use serde_json::json;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn patches_of_one_user_from_four_instances() {
        let Some(scratch) = Scratch::postgres() else {
            return;
        };
        let Scratch::Postgres(db) = &scratch else {
            return;
        };
        let sql = format!("ALTER DATABASE {db} SET default_transaction_isolation = 'serializable'");
        std::thread::spawn(move || {
            let mut admin = ::postgres::Client::connect(ADMIN, ::postgres::NoTls).expect("admin");
            admin.batch_execute(&sql).expect("alter database");
        })
        .join()
        .expect("thread");
        let mut svcs = Vec::new();
        for _ in 0..4 {
            let mut config = ServiceConfig::default();
            config.max_write_retries = 64;
            svcs.push(Arc::new(
                Service::new(scratch.store().await, config).with_clock(clock()),
            ));
        }
        let (_, u, _) = call(&svcs[0], post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "strict"}))).await;
        let path = format!("/Users/{}", u["id"].as_str().expect("id"));
        let mut tasks = Vec::new();
        for c in 0..8usize {
            let svc = Arc::clone(&svcs[c % 4]);
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let mut codes = Vec::new();
                for i in 0..10usize {
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": format!("c{c}-{i}")}]});
                    codes.push(call(&svc, Request::new("PATCH", &path).with_json(&op)).await.0);
                }
                codes
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), vec![200; 10]);
        }
        let (_, u, _) = call(&svcs[1], Request::new("GET", &path)).await;
        assert_eq!(u["meta"]["version"], "W/\"81\"");
    }
}

mod taken_ids {
    //! A host may choose ids itself: creating a resource under an id its tenant
    //! already uses is a conflict that writes nothing (neither the userName it
    //! claims nor an event); another tenant may use the id.
    use super::*;
    use scimkit::events::{Event, EventKind, EventLog};
    use scimkit::store::{Record, Store, StoreError, UniqueValue};
    use serde_json::json;

    fn record(id: &str, name: &str) -> (Record, Vec<UniqueValue>) {
        let record = Record {
            id: id.to_owned(),
            version: 1,
            resource: json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": name}),
        };
        let unique = vec![UniqueValue {
            attribute: "userName".to_owned(),
            value: name.to_owned(),
        }];
        (record, unique)
    }

    fn created(id: &str) -> Vec<Event> {
        vec![Event {
            id: format!("ev-{id}"),
            kind: EventKind::Created {
                attributes: vec!["userName".to_owned()],
            },
            resource_type: "User".to_owned(),
            resource_id: id.to_owned(),
            version: 1,
            time: chrono::Utc::now(),
        }]
    }

    async fn run(scratch: Scratch) {
        let store = scratch.store().await;
        let (a, unique_a) = record("fixed-1", "alice");
        let stored = store
            .create(&"t1".to_owned(), "User", a, &unique_a, &created("a"))
            .await;
        assert!(stored.is_ok(), "{stored:?}");
        let (b, unique_b) = record("fixed-1", "bob");
        let again = store
            .create(
                &"t1".to_owned(),
                "User",
                b.clone(),
                &unique_b,
                &created("b"),
            )
            .await;
        assert!(
            matches!(&again, Err(StoreError::Conflict(m)) if m.contains("fixed-1")),
            "{again:?}"
        );
        // Nothing of the refused creation stayed: bob is free, and no event.
        let (c, _) = record("fixed-2", "bob");
        let bob = store
            .create(&"t1".to_owned(), "User", c, &unique_b, &[])
            .await;
        assert!(bob.is_ok(), "{bob:?}");
        let events = store.read_events("check", 100).await.expect("events");
        assert_eq!(events.len(), 1, "{events:?}");
        // Another tenant may use the id.
        let other = store
            .create(&"t2".to_owned(), "User", b, &unique_b, &[])
            .await;
        assert!(other.is_ok(), "{other:?}");
        store.close().await;
    }

    #[tokio::test]
    async fn on_sqlite() {
        run(Scratch::file()).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            run(scratch).await;
        }
    }

    /// Writes sent at once, most of them carried to SQLite together in one call:
    /// each is judged alone. Of eight creations under one id one stands, the other
    /// seven are conflicts that leave neither their userName nor an event; of 24
    /// replaces, those that expected a stale version are 412 and write nothing, and
    /// the others each write exactly one version, whatever their place in the call.
    async fn run_at_once(scratch: Scratch) {
        let store = std::sync::Arc::new(scratch.store().await);
        let t = "t1".to_owned();
        let mut tasks = Vec::new();
        for i in 0..24usize {
            let store = std::sync::Arc::clone(&store);
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                let id = if i % 3 == 0 {
                    "shared".to_owned()
                } else {
                    format!("own-{i}")
                };
                let name = format!("name-{i}");
                let (r, u) = record(&id, &name);
                let events = created(&format!("{i}"));
                (i, store.create(&t, "User", r, &u, &events).await)
            }));
        }
        let mut shared_won = None;
        for task in tasks {
            let (i, out) = task.await.expect("task");
            match (i % 3, out) {
                (0, Ok(_)) => assert!(shared_won.replace(i).is_none(), "two creations of one id"),
                (0, Err(StoreError::Conflict(m))) => assert!(m.contains("shared"), "{m}"),
                (_, Ok(r)) => assert_eq!(r.id, format!("own-{i}")),
                (_, out) => panic!("creation {i}: {out:?}"),
            }
        }
        let winner = shared_won.expect("one creation of the shared id stands");
        // The losers' names are free; one event per creation that stood.
        for i in (0..24).step_by(3).filter(|i| *i != winner) {
            let (r, u) = record(&format!("again-{i}"), &format!("name-{i}"));
            let again = store.create(&t, "User", r, &u, &[]).await;
            assert!(again.is_ok(), "name-{i} stayed claimed: {again:?}");
        }
        let events = store.read_events("check", 100).await.expect("events");
        assert_eq!(events.len(), 17, "{events:?}");
        // Replaces at once: odd ones expect a stale version.
        let mut tasks = Vec::new();
        for i in (0..24usize).filter(|i| i % 3 != 0) {
            let store = std::sync::Arc::clone(&store);
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("own-{i}");
                let (mut r, u) = record(&id, &format!("renamed-{i}"));
                r.version = 2;
                let expected = if i % 2 == 1 { 7 } else { 1 };
                (i, store.replace(&t, "User", r, expected, &u, &[]).await)
            }));
        }
        for task in tasks {
            let (i, out) = task.await.expect("task");
            let stored = store
                .get(
                    &t,
                    "User",
                    &format!("own-{i}"),
                    &scimkit::store::Projection::all(),
                )
                .await
                .expect("get");
            if i % 2 == 1 {
                assert!(
                    matches!(out, Err(StoreError::PreconditionFailed)),
                    "{i}: {out:?}"
                );
                assert_eq!(
                    (stored.version, &stored.resource["userName"]),
                    (1, &json!(format!("name-{i}")))
                );
            } else {
                assert!(out.is_ok(), "{i}: {out:?}");
                assert_eq!(
                    (stored.version, &stored.resource["userName"]),
                    (2, &json!(format!("renamed-{i}")))
                );
            }
        }
        // Two values of one attribute, one of them another resource's: a conflict,
        // and nothing of it written.
        let email = |v: &str| UniqueValue {
            attribute: "emails".to_owned(),
            value: v.to_owned(),
        };
        let (holder, _) = record("holder", "holder");
        let held = store
            .create(&t, "User", holder, &[email("a@example.com")], &[])
            .await;
        assert!(held.is_ok(), "{held:?}");
        let (second, _) = record("second", "second");
        let both = [email("b@example.com"), email("a@example.com")];
        let out = store.create(&t, "User", second, &both, &[]).await;
        assert!(matches!(out, Err(StoreError::Conflict(_))), "{out:?}");
        let (third, _) = record("third", "third");
        let free = store
            .create(&t, "User", third, &[email("b@example.com")], &[])
            .await;
        assert!(free.is_ok(), "{free:?}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_once_on_sqlite() {
        run_at_once(Scratch::file()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_once_on_sqlite_in_memory() {
        run_at_once(Scratch::Memory).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_once_on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            run_at_once(scratch).await;
        }
    }

    /// Whole-resource writes at once, of two tenants that use the same ids and
    /// names (on PostgreSQL several share one statement): each is judged as if it
    /// ran alone. Stale ones are 412, a rename to a name its tenant's other user
    /// holds is 409, of two writes of one user from one version exactly one
    /// stands; only those that stand record their event and move their claims, and
    /// the other tenant's users are not touched.
    async fn replaces_at_once(scratch: Scratch) {
        let store = std::sync::Arc::new(scratch.store().await);
        let tenants = ["t1".to_owned(), "t2".to_owned()];
        for t in &tenants {
            for i in 0..32usize {
                let (r, u) = record(&format!("u-{i}"), &format!("name-{i}"));
                let stored = store.create(t, "User", r, &u, &[]).await;
                assert!(stored.is_ok(), "{stored:?}");
            }
        }
        let write = |i: usize, name: String, expected: u64, event: String| {
            let store = std::sync::Arc::clone(&store);
            let t = tenants[i % 2].clone();
            tokio::spawn(async move {
                let id = format!("u-{i}");
                let (mut r, u) = record(&id, &name);
                r.version = 2;
                r.resource["displayName"] = json!(event);
                let events = vec![Event {
                    id: event.clone(),
                    kind: EventKind::Updated {
                        attributes: vec!["displayName".to_owned()],
                    },
                    resource_type: "User".to_owned(),
                    resource_id: id.clone(),
                    version: 2,
                    time: chrono::Utc::now(),
                }];
                (
                    i,
                    event,
                    store.replace(&t, "User", r, expected, &u, &events).await,
                )
            })
        };
        let mut tasks = Vec::new();
        for i in 0..32usize {
            let (name, expected) = match i % 8 {
                0 | 1 => (format!("name-{i}"), 7),
                2 | 3 => (format!("name-{}", i - 2), 1),
                4 | 5 => (format!("fresh-{i}"), 1),
                _ => (format!("name-{i}"), 1),
            };
            tasks.push(write(i, name, expected, format!("r-{i}")));
            if i % 8 == 4 || i % 8 == 5 {
                tasks.push(write(i, format!("dup-{i}"), 1, format!("d-{i}")));
            }
        }
        let mut stood = std::collections::BTreeMap::new();
        for task in tasks {
            let (i, event, out) = task.await.expect("task");
            match (i % 8, out) {
                (0 | 1, Err(StoreError::PreconditionFailed)) => {}
                (2 | 3, Err(StoreError::Conflict(m))) => assert!(m.contains("name-"), "{m}"),
                (4 | 5, Err(StoreError::PreconditionFailed)) => {}
                (4..=7, Ok(r)) => assert!(stood.insert(i, (event, r)).is_none(), "{i} twice"),
                (_, out) => panic!("write {i} ({event}): {out:?}"),
            }
        }
        assert_eq!(stood.len(), 16, "{:?}", stood.keys());
        for i in 0..32usize {
            let (t, other) = (&tenants[i % 2], &tenants[1 - i % 2]);
            let get = |t: &String| {
                let store = std::sync::Arc::clone(&store);
                let (t, id) = (t.clone(), format!("u-{i}"));
                async move {
                    let all = scimkit::store::Projection::all();
                    store.get(&t, "User", &id, &all).await.expect("get")
                }
            };
            let mine = get(t).await;
            match stood.get(&i) {
                Some((event, r)) => {
                    assert_eq!(mine.version, 2, "{i}");
                    assert_eq!(mine.resource, r.resource, "{i}");
                    assert_eq!(mine.resource["displayName"], json!(event));
                }
                None => assert_eq!(
                    (mine.version, &mine.resource["userName"]),
                    (1, &json!(format!("name-{i}"))),
                    "{i}"
                ),
            }
            let theirs = get(other).await;
            assert_eq!(
                (theirs.version, &theirs.resource["userName"]),
                (1, &json!(format!("name-{i}"))),
                "{i} in the other tenant"
            );
        }
        // Claims: a name let go is free in its tenant only, the new one is taken.
        for (i, (_, r)) in &stood {
            let (t, other) = (&tenants[i % 2], &tenants[1 - i % 2]);
            let name = r.resource["userName"]
                .as_str()
                .expect("userName")
                .to_owned();
            let (probe, u) = record(&format!("probe-{i}"), &name);
            let taken = store.create(t, "User", probe, &u, &[]).await;
            assert!(
                matches!(taken, Err(StoreError::Conflict(_))),
                "{name}: {taken:?}"
            );
            if name != format!("name-{i}") {
                let (probe, u) = record(&format!("free-{i}"), &format!("name-{i}"));
                let free = store.create(t, "User", probe, &u, &[]).await;
                assert!(free.is_ok(), "name-{i} stayed claimed: {free:?}");
                let (probe, u) = record(&format!("free-{i}"), &format!("name-{i}"));
                let held = store.create(other, "User", probe, &u, &[]).await;
                assert!(matches!(held, Err(StoreError::Conflict(_))), "{held:?}");
            }
        }
        // The events of the writes that stood, and only theirs.
        let events = store.read_events("check", 100).await.expect("events");
        let mut recorded: Vec<String> = events.into_iter().map(|e| e.event.id).collect();
        recorded.sort();
        let mut expected: Vec<String> = stood.values().map(|(e, _)| e.clone()).collect();
        expected.sort();
        assert_eq!(recorded, expected);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replaces_at_once_on_sqlite() {
        replaces_at_once(Scratch::file()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replaces_at_once_on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            replaces_at_once(scratch).await;
        }
    }
}

mod ids_that_differ_from_their_keys {
    //! Members name resources ignoring case: a resource is found by its id folded
    //! to lower case (its key) whether or not that is its id. On PostgreSQL those
    //! whose key is their id are found by the primary key, the others by the index
    //! of keys, which holds only them.
    use super::*;
    use scimkit::store::{MemberChange, MemberDelta, Record, Store, StoreError};
    use serde_json::json;

    async fn run(store: SqlStore<String>) {
        let ctx = "acme".to_owned();
        let meta = json!({"resourceType": "User", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"});
        for id in ["Mixed-1", "plain-2", "UPPER-3"] {
            let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": id, "meta": meta});
            let record = Record {
                id: id.into(),
                version: 1,
                resource: user,
            };
            store
                .create(&ctx, "User", record, &[], &[])
                .await
                .expect("user");
        }
        // Another tenant's resource is nobody's here.
        let other = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "Other-4", "userName": "o", "meta": meta});
        let record = Record {
            id: "Other-4".into(),
            version: 1,
            resource: other,
        };
        store
            .create(&"globex".to_owned(), "User", record, &[], &[])
            .await
            .expect("other tenant's user");
        let asked = [
            "mixed-1", "MIXED-1", "Mixed-1", "PLAIN-2", "plain-2", "upper-3", "other-4", "Other-4",
            "none",
        ];
        let found = store
            .existing_ids(&ctx, "User", &asked, false)
            .await
            .expect("existing ids");
        assert_eq!(
            found,
            Some(
                [
                    "mixed-1", "MIXED-1", "Mixed-1", "PLAIN-2", "plain-2", "upper-3"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        let exact = store
            .existing_ids(&ctx, "User", &asked, true)
            .await
            .expect("existing ids");
        assert_eq!(
            exact,
            Some(["Mixed-1", "plain-2"].map(String::from).to_vec())
        );

        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g", "displayName": "G", "meta": meta});
        let record = Record {
            id: "g".into(),
            version: 1,
            resource: group,
        };
        store
            .create(&ctx, "Group", record, &[], &[])
            .await
            .expect("group");
        let delta = |ids: &[&str]| MemberDelta {
            attribute: "members".into(),
            case_exact: false,
            changes: ids
                .iter()
                .map(|id| MemberChange::Add(json!({"value": id})))
                .collect(),
            modified: chrono::Utc::now(),
            max_members: usize::MAX,
            member_types: vec!["User".into()],
        };
        // The store's own check, in the member transaction, finds each by its key.
        let added = store
            .update_members(
                &ctx,
                "Group",
                "g",
                &delta(&["mixed-1", "PLAIN-2", "Upper-3"]),
                None,
            )
            .await
            .expect("add");
        assert_eq!(added, Some(2));
        let refused = store
            .update_members(&ctx, "Group", "g", &delta(&["other-4"]), None)
            .await;
        match refused {
            Err(StoreError::Invalid(detail)) => assert!(detail.contains("other-4"), "{detail}"),
            other => panic!("{other:?}"),
        }
        store.close().await;
    }

    #[tokio::test]
    async fn on_sqlite() {
        let scratch = Scratch::file();
        run(scratch.store().await).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let Some(scratch) = Scratch::postgres() else {
            return;
        };
        run(scratch.store().await).await;
    }
}

mod members_of_deleted_users {
    //! The service checks that added members exist; the store checks again in the
    //! member transaction, holding the member's row, so a user deleted between the
    //! two checks is refused rather than listed by a group forever.
    use super::*;
    use scimkit::store::{MemberChange, MemberDelta, Record, Store, StoreError};
    use serde_json::json;

    async fn run(store: SqlStore<String>) {
        let ctx = "acme".to_owned();
        let meta = json!({"resourceType": "User", "created": "2024-05-13T04:42:34Z", "lastModified": "2024-05-13T04:42:34Z"});
        for id in ["u1", "u2"] {
            let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": id, "meta": meta});
            store
                .create(
                    &ctx,
                    "User",
                    Record {
                        id: id.into(),
                        version: 1,
                        resource: user,
                    },
                    &[],
                    &[],
                )
                .await
                .expect("user");
        }
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g", "displayName": "G", "meta": meta});
        store
            .create(
                &ctx,
                "Group",
                Record {
                    id: "g".into(),
                    version: 1,
                    resource: group,
                },
                &[],
                &[],
            )
            .await
            .expect("group");
        let delta = |ids: &[&str]| MemberDelta {
            attribute: "members".into(),
            case_exact: false,
            changes: ids
                .iter()
                .map(|id| MemberChange::Add(json!({"value": id})))
                .collect(),
            modified: chrono::Utc::now(),
            max_members: usize::MAX,
            member_types: vec!["User".into(), "Group".into()],
        };
        // The service's check has passed for u2; then u2 is deleted.
        store
            .delete(&ctx, "User", "u2", None, &[])
            .await
            .expect("delete");
        let refused = store
            .update_members(&ctx, "Group", "g", &delta(&["U1", "u2"]), None)
            .await;
        match refused {
            Err(StoreError::Invalid(detail)) => assert!(detail.contains("u2"), "{detail}"),
            other => panic!("{other:?}"),
        }
        // Nothing was written: still version 1, no members.
        let g = store
            .get(&ctx, "Group", "g", &scimkit::store::Projection::all())
            .await
            .expect("group");
        assert_eq!(g.version, 1);
        assert!(g.resource.get("members").is_none(), "{}", g.resource);
        // An existing member (ids compare ignoring case here) is added.
        let added = store
            .update_members(&ctx, "Group", "g", &delta(&["U1"]), None)
            .await
            .expect("add");
        assert_eq!(added, Some(2));
        store.close().await;
    }

    #[tokio::test]
    async fn on_sqlite() {
        let scratch = Scratch::file();
        run(scratch.store().await).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let Some(scratch) = Scratch::postgres() else {
            return;
        };
        run(scratch.store().await).await;
    }
}

mod event_delivery {
    //! Waking consumers when events commit, and leases that let one instance of
    //! several deliver a consumer's events.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::events::EventLog;
    use serde_json::json;
    use std::time::Duration;

    /// A consumer waiting on one store wakes when another store (another instance,
    /// on PostgreSQL) commits an event; a wait with nothing committed times out.
    async fn waiter_wakes(scratch: Scratch, across_instances: bool) {
        let reader = scratch.store().await;
        let writer = if across_instances {
            scratch.store().await
        } else {
            reader.clone()
        };
        let mut waiter = reader.event_waiter().await.expect("waiter");
        assert!(
            !waiter.wait(Duration::from_millis(200)).await,
            "nothing committed yet"
        );
        let writer_of_patch = writer.clone();
        let svc = service(writer);
        let handle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "woken"});
            call(&svc, post("/Users", &body)).await.0
        });
        assert!(
            waiter.wait(Duration::from_secs(10)).await,
            "woken by the commit"
        );
        assert_eq!(handle.await.expect("writer"), 201);
        let events = reader.read_events("waiter", 10).await.expect("read");
        assert_eq!(events.len(), 1);
        // A commit between a read and the next wait is not missed.
        let svc = service(reader.clone());
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "second"});
        let (code, second, _) = call(&svc, post("/Users", &body)).await;
        assert_eq!(code, 201);
        assert!(waiter.wait(Duration::from_secs(10)).await);
        // A PATCH (on PostgreSQL, announced by the runner of shared writes) wakes
        // it too, once nothing else is left to wake it.
        while waiter.wait(Duration::from_millis(100)).await {}
        let path = format!("/Users/{}", second["id"].as_str().expect("id"));
        let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "Second"}]});
        let svc = service(writer_of_patch);
        let patched = call(
            &svc,
            scimkit::service::Request::new("PATCH", &path).with_json(&op),
        )
        .await;
        assert_eq!(patched.0, 200, "{}", patched.1);
        assert!(
            waiter.wait(Duration::from_secs(10)).await,
            "woken by the PATCH"
        );
    }

    #[tokio::test]
    async fn waiter_wakes_on_sqlite() {
        waiter_wakes(Scratch::file(), false).await;
    }

    #[tokio::test]
    async fn waiter_wakes_across_postgres_instances() {
        if let Some(scratch) = Scratch::postgres() {
            waiter_wakes(scratch, true).await;
        }
    }

    /// One owner at a time; renewed by its owner; free after a release or once
    /// it expires.
    async fn leases(scratch: Scratch) {
        let (a, b) = (scratch.store().await, scratch.store().await);
        let ttl = Duration::from_secs(30);
        assert!(a.lease_consumer("webhook", "a", ttl).await.expect("lease"));
        assert!(!b.lease_consumer("webhook", "b", ttl).await.expect("lease"));
        assert!(a.lease_consumer("webhook", "a", ttl).await.expect("renew"));
        a.release_consumer("webhook", "a").await.expect("release");
        assert!(
            b.lease_consumer("webhook", "b", Duration::from_millis(1))
                .await
                .expect("lease")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            a.lease_consumer("webhook", "a", ttl)
                .await
                .expect("expired lease taken")
        );
        // Another consumer's lease is its own.
        assert!(b.lease_consumer("audit", "b", ttl).await.expect("lease"));
        // A consumer gone for good is forgotten, and holds back nothing.
        let names: Vec<String> = a
            .consumers()
            .await
            .expect("consumers")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["audit", "webhook"]);
        assert!(a.forget_consumer("audit").await.expect("forget"));
        assert!(!a.forget_consumer("audit").await.expect("forget"));
        assert_eq!(a.consumers().await.expect("consumers").len(), 1);
    }

    #[tokio::test]
    async fn leases_on_sqlite() {
        leases(Scratch::file()).await;
    }

    #[tokio::test]
    async fn leases_on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            leases(scratch).await;
        }
    }
}

mod group_commit {
    //! SQLite writers of one process share commits: each write in a savepoint of
    //! the open transaction, answered once the commit that carries it is durable.
    use super::*;
    use common::scenarios::{call, post, tenant};
    use scimkit::events::EventLog;
    use scimkit::service::Request;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::time::Duration;

    fn user(name: &str) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
    }

    /// `field` of every user the service lists, sorted.
    async fn users_by(svc: &Service<SqlStore<String>>, field: &str) -> Vec<String> {
        let (_, list, _) = call(svc, Request::new("GET", "/Users?count=1000")).await;
        let mut out: Vec<String> = list["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u[field].as_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    /// Every user the service lists, by userName.
    async fn user_names(svc: &Service<SqlStore<String>>) -> Vec<String> {
        users_by(svc, "userName").await
    }

    /// Sends `requests` at once and abandons every `every`-th after `delay` (some
    /// before their turn, some in it, some waiting for their commit); each that
    /// completes answers `expected`.
    async fn abandon_some(
        svc: &Arc<Service<SqlStore<String>>>,
        requests: Vec<Request>,
        every: usize,
        delay: Duration,
        expected: u16,
    ) {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|req| {
                let svc = Arc::clone(svc);
                tokio::spawn(async move {
                    let resp = svc.handle(&tenant(), req).await;
                    (resp.status, resp.json_body().unwrap_or(Value::Null))
                })
            })
            .collect();
        tokio::time::sleep(delay).await;
        for (i, t) in tasks.iter().enumerate() {
            if i % every == 0 {
                t.abort();
            }
        }
        for t in tasks {
            if let Ok((code, body)) = t.await {
                assert_eq!(code, expected, "{body}");
            }
        }
    }

    /// 64 creations at once, two for each of 32 names: one of each pair is 201 and
    /// the other 409, even when both share a commit; the 409s leave nothing behind
    /// (no row, no event), and everything answered 201 is in the file for a new
    /// store to read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn failed_writes_in_a_shared_commit_leave_nothing() {
        let scratch = Scratch::file();
        let svc = Arc::new(service(scratch.store().await));
        let mut tasks = Vec::new();
        for i in 0..64usize {
            let svc = Arc::clone(&svc);
            tasks.push(tokio::spawn(async move {
                let name = format!("pair{}", i % 32);
                (
                    name.clone(),
                    call(&svc, post("/Users", &user(&name))).await.0,
                )
            }));
        }
        let mut created = Vec::new();
        let mut conflicts = 0;
        for t in tasks {
            match t.await.expect("task") {
                (name, 201) => created.push(name),
                (_, 409) => conflicts += 1,
                (name, code) => panic!("{name}: {code}"),
            }
        }
        created.sort();
        assert_eq!(created.len(), 32, "one creation per name");
        assert_eq!(conflicts, 32);
        // Read through a store of its own: only what was committed.
        let fresh = service(scratch.store().await);
        assert_eq!(user_names(&fresh).await, created);
        let events = fresh
            .store()
            .read_events("check", 1_000)
            .await
            .expect("events");
        assert_eq!(events.len(), 32, "one event per creation");
        // Every user renamed to one name at once: one rename wins, the others are
        // 409 and keep their names and claims.
        let ids = users_by(&svc, "id").await;
        let mut tasks = Vec::new();
        for id in ids {
            let svc = Arc::clone(&svc);
            tasks.push(tokio::spawn(async move {
                let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "userName", "value": "winner"}]});
                call(&svc, Request::new("PATCH", &format!("/Users/{id}")).with_json(&op))
                    .await
                    .0
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.expect("task"));
        }
        assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
        assert_eq!(codes.iter().filter(|c| **c == 409).count(), 31, "{codes:?}");
        let names = user_names(&service(scratch.store().await)).await;
        assert_eq!(names.len(), 32);
        assert!(names.contains(&"winner".to_owned()));
        let kept = names.iter().filter(|n| n.starts_with("pair")).count();
        assert_eq!(kept, 31);
        for name in names.iter().filter(|n| n.starts_with("pair")) {
            assert_eq!(
                call(&svc, post("/Users", &user(name))).await.0,
                409,
                "{name} is still claimed"
            );
        }
    }

    /// PATCHes of one user from 16 clients at once, in one process: they queue for
    /// the resource instead of racing, so none needs a retry (with retries turned
    /// off, every one succeeds) and each writes one version.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_to_one_resource_queue_in_process() {
        let scratch = Scratch::file();
        let mut config = ServiceConfig::default();
        config.max_write_retries = 0;
        let svc = Arc::new(Service::new(scratch.store().await, config).with_clock(clock()));
        let (_, u, _) = call(&svc, post("/Users", &user("hot"))).await;
        let path = format!("/Users/{}", u["id"].as_str().expect("id"));
        let mut tasks = Vec::new();
        for c in 0..16usize {
            let svc = Arc::clone(&svc);
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let mut codes = Vec::new();
                for i in 0..10usize {
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": format!("c{c}-{i}")}]});
                    codes.push(call(&svc, Request::new("PATCH", &path).with_json(&op)).await.0);
                }
                codes
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), vec![200; 10]);
        }
        let (_, u, _) = call(&svc, Request::new("GET", &path)).await;
        assert_eq!(u["meta"]["version"], "W/\"161\"");
    }

    /// Writers dropped in the middle (their requests abandoned at any point) leave
    /// no transaction open: the writes still running complete, a write afterwards is
    /// not held up, another process (store) can take the write lock, and every
    /// user is either there with its event or not there at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_dropped_midway_hold_nothing() {
        let scratch = Scratch::file();
        let svc = Arc::new(service(scratch.store().await));
        for round in 0..5u32 {
            let creations = (0..40)
                .map(|i| post("/Users", &user(&format!("r{round}-{i}"))))
                .collect();
            abandon_some(&svc, creations, 2, Duration::from_micros(300) * round, 201).await;
        }
        // PATCHes abandoned at any point, on the users there are: nothing
        // half-done is committed, and the others succeed.
        let ids = users_by(&svc, "id").await;
        for round in 0..8u32 {
            let patches = ids
                .iter()
                .take(40)
                .enumerate()
                .map(|(i, id)| {
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "nickName", "value": format!("n{round}-{i}")}]});
                    Request::new("PATCH", &format!("/Users/{id}")).with_json(&op)
                })
                .collect();
            abandon_some(&svc, patches, 3, Duration::from_micros(150) * round, 200).await;
        }
        let after = tokio::time::timeout(
            Duration::from_secs(10),
            call(&svc, post("/Users", &user("after"))),
        )
        .await
        .expect("a write after the abandoned ones is not held up");
        assert_eq!(after.0, 201);
        // Another store on the file (another process, as far as SQLite knows).
        let other = service(scratch.store().await);
        let (code, _, _) = tokio::time::timeout(
            Duration::from_secs(10),
            call(&other, post("/Users", &user("elsewhere"))),
        )
        .await
        .expect("the write lock is free");
        assert_eq!(code, 201);
        let names = user_names(&other).await;
        let events = other
            .store()
            .read_events("check", 1_000)
            .await
            .expect("events");
        // Each user's events name exactly the versions it went through: every
        // committed write has its event, and nothing else does.
        let (_, list, _) = call(&other, Request::new("GET", "/Users?count=1000")).await;
        let users = list["Resources"].as_array().cloned().unwrap_or_default();
        assert_eq!(users.len(), names.len());
        for u in users {
            let id = u["id"].as_str().expect("id");
            let version: u64 = u["meta"]["version"]
                .as_str()
                .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok())
                .expect("version");
            let mut versions: Vec<u64> = events
                .iter()
                .filter(|e| e.event.resource_id == id)
                .map(|e| e.event.version)
                .collect();
            versions.sort_unstable();
            assert_eq!(versions, (1..=version).collect::<Vec<u64>>(), "{id}");
        }
    }
}

mod stalled_statements {
    //! PostgreSQL: a write whose row another transaction holds waits for it, and
    //! the process's other writes do not wait with it: once a statement has been on
    //! its way a few milliseconds, another carries the writes queued behind it.
    use super::*;
    use scimkit::store::{Record, Store, UniqueValue};
    use serde_json::json;
    use sqlx::Connection;
    use std::time::Duration;

    fn user(id: &str, version: u64, name: &str) -> (Record, Vec<UniqueValue>) {
        let record = Record {
            id: id.to_owned(),
            version,
            resource: json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                             "id": id, "userName": id, "displayName": name}),
        };
        let unique = vec![UniqueValue {
            attribute: "userName".to_owned(),
            value: id.to_owned(),
        }];
        (record, unique)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn do_not_hold_up_the_other_writes() {
        let Some(scratch) = Scratch::postgres() else {
            return;
        };
        let store = scratch.store().await;
        let t = "t".to_owned();
        for i in 0..9 {
            let (record, unique) = user(&format!("u{i}"), 1, "first");
            store
                .create(&t, "User", record, &unique, &[])
                .await
                .expect("create");
        }
        // Another transaction holds u0's row.
        let mut holder = sqlx::PgConnection::connect(&scratch.url())
            .await
            .expect("connect");
        let mut held = holder.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM scim_resources WHERE tenant = 't' AND id = 'u0' FOR UPDATE")
            .execute(&mut *held)
            .await
            .expect("lock");
        let stalled = {
            let (store, t) = (store.clone(), t.clone());
            tokio::spawn(async move {
                let (record, unique) = user("u0", 2, "second");
                store.replace(&t, "User", record, 1, &unique, &[]).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let others: Vec<_> = (1..9)
            .map(|i| {
                let (store, t) = (store.clone(), t.clone());
                tokio::spawn(async move {
                    let (record, unique) = user(&format!("u{i}"), 2, "second");
                    store.replace(&t, "User", record, 1, &unique, &[]).await
                })
            })
            .collect();
        // A bound on a hang, not a measure of speed.
        for other in others {
            let written = tokio::time::timeout(Duration::from_secs(20), other)
                .await
                .expect("a write waited for a row it does not touch")
                .expect("task");
            assert_eq!(written.map(|r| r.version).ok(), Some(2));
        }
        assert!(!stalled.is_finished(), "u0's row is still held");
        held.rollback().await.expect("release");
        let written = stalled.await.expect("task");
        assert_eq!(written.map(|r| r.version).ok(), Some(2));
        for i in 0..9 {
            let got = store
                .get(&t, "User", &format!("u{i}"), &Default::default())
                .await
                .expect("get");
            assert_eq!(
                (got.version, &got.resource["displayName"]),
                (2, &json!("second"))
            );
        }
        store.close().await;
    }
}

/// PostgreSQL: after the migrations the comparison documents' GIN index takes new
/// entries in a pending list bounded to 512 kB (migration 7), and leaves out the
/// attributes btree indexes answer and `meta` (migration 9).
#[tokio::test]
async fn comparison_index_takes_entries_in_a_bounded_pending_list() {
    use sqlx::Connection;
    let Some(scratch) = Scratch::postgres() else {
        return;
    };
    let store = scratch.store().await;
    let mut conn = sqlx::PgConnection::connect(&scratch.url())
        .await
        .expect("connect");
    let options: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(reloptions) FROM pg_class WHERE relname = 'scim_resources_cmp' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("options");
    assert_eq!(options, ["fastupdate=on", "gin_pending_list_limit=512"]);
    let definition: String =
        sqlx::query_scalar("SELECT pg_get_indexdef('scim_resources_cmp'::regclass)")
            .fetch_one(&mut conn)
            .await
            .expect("definition");
    assert!(
        definition.contains("(cmp - '{id,userName,meta}'::text[])) jsonb_path_ops"),
        "{definition}"
    );
    conn.close().await.expect("close");
    store.close().await;
}

mod claims_left_as_they_were {
    //! A replace that names the unique values its resource owns already, and no
    //! other, skips releasing and claiming them; one that names fewer, more or
    //! other values releases and claims as before.
    use super::*;
    use scimkit::store::{Record, Store, StoreError, UniqueValue};
    use serde_json::json;

    fn value(attribute: &str, value: &str) -> UniqueValue {
        UniqueValue {
            attribute: attribute.to_owned(),
            value: value.to_owned(),
        }
    }

    fn user(id: &str, version: u64, name: &str) -> Record {
        Record {
            id: id.to_owned(),
            version,
            resource: json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": name}),
        }
    }

    /// Creates the user `id` of tenant t1 with `values`, the first its userName.
    async fn create(
        store: &SqlStore<String>,
        id: &str,
        values: &[UniqueValue],
    ) -> Result<Record, StoreError> {
        let record = user(id, 1, &values[0].value);
        store
            .create(&"t1".to_owned(), "User", record, values, &[])
            .await
    }

    /// Replaces user A's version `version - 1` with `version`, which names
    /// `values`, the first its userName.
    async fn replace(
        store: &SqlStore<String>,
        version: u64,
        values: &[UniqueValue],
    ) -> Result<Record, StoreError> {
        let record = user("A", version, &values[0].value);
        let t = "t1".to_owned();
        store
            .replace(&t, "User", record, version - 1, values, &[])
            .await
    }

    async fn run(scratch: Scratch) {
        let store = scratch.store().await;
        let a = [value("userName", "a"), value("emails", "x@example.com")];
        let stored = create(&store, "A", &a).await;
        assert!(stored.is_ok(), "{stored:?}");
        // The same values: left as they were, and still A's.
        let same = replace(&store, 2, &a).await;
        assert!(same.is_ok(), "{same:?}");
        for taken in [value("userName", "a"), value("emails", "x@example.com")] {
            let out = create(&store, "B", std::slice::from_ref(&taken)).await;
            assert!(
                matches!(&out, Err(StoreError::Conflict(m)) if m.contains(&format!("{:?}", taken.value))),
                "{taken:?}: {out:?}"
            );
        }
        // Fewer values: the email is released.
        let out = replace(&store, 3, &[value("userName", "a")]).await;
        assert!(out.is_ok(), "{out:?}");
        let b = [value("userName", "b"), value("emails", "x@example.com")];
        let out = create(&store, "B", &b).await;
        assert!(out.is_ok(), "{out:?}");
        // As many values, one of them another's: a conflict that writes nothing.
        let out = replace(&store, 4, &a).await;
        assert!(matches!(out, Err(StoreError::Conflict(_))), "{out:?}");
        let kept = store
            .get(
                &"t1".to_owned(),
                "User",
                "A",
                &scimkit::store::Projection::all(),
            )
            .await;
        assert!(matches!(&kept, Ok(r) if r.version == 3), "{kept:?}");
        // As many values, one of them new: claimed, and the one it replaces freed.
        let renamed = [value("userName", "a2")];
        let out = replace(&store, 4, &renamed).await;
        assert!(out.is_ok(), "{out:?}");
        let out = create(&store, "C", &[value("userName", "a")]).await;
        assert!(out.is_ok(), "{out:?}");
        // Left as they were again, from a resource that owns one value.
        let out = replace(&store, 5, &renamed).await;
        assert!(out.is_ok(), "{out:?}");
        let out = create(&store, "D", &renamed).await;
        assert!(matches!(out, Err(StoreError::Conflict(_))), "{out:?}");
        store.close().await;
    }

    #[tokio::test]
    async fn on_sqlite() {
        run(Scratch::file()).await;
    }

    #[tokio::test]
    async fn on_sqlite_in_memory() {
        run(Scratch::Memory).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        if let Some(scratch) = Scratch::postgres() {
            run(scratch).await;
        }
    }
}

mod wal {
    //! The WAL of a SQLite file stays bounded. SQLite starts its WAL over only at a
    //! moment when no reader uses it, and keeps the file's size afterwards; readers
    //! that overlap without a pause never give it that moment. The store's writers
    //! truncate a WAL grown past 16 MiB once the readers let them, overlapping ones
    //! included, and leave it alone while a reader still needs it.
    use super::*;
    use common::scenarios::{call, post};
    use scimkit::service::Request;
    use serde_json::json;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    fn wal_len(db: &Path) -> u64 {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(PathBuf::from(wal))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Two readers taking turns so that one of them always holds a read
    /// transaction: each ends its transaction only once the other has begun one
    /// after it (a millisecond or more later), then begins the next. Each returns
    /// how many reads it made; each read must find the one resource.
    fn overlapping_readers(
        db: &Path,
        stop: &Arc<AtomicBool>,
    ) -> Vec<std::thread::JoinHandle<usize>> {
        let begun = Arc::new(AtomicUsize::new(0));
        (0..2)
            .map(|_| {
                let (db, stop, begun) = (db.to_owned(), Arc::clone(stop), Arc::clone(&begun));
                std::thread::spawn(move || {
                    let conn = rusqlite::Connection::open(&db).expect("reader");
                    let mut reads = 0;
                    while !stop.load(Ordering::SeqCst) {
                        conn.execute_batch("BEGIN").expect("begin");
                        // The read transaction holds its snapshot from its first read.
                        let n: i64 = conn
                            .query_row("SELECT count(*) FROM scim_resources", [], |r| r.get(0))
                            .expect("read");
                        assert_eq!(n, 1);
                        let mine = begun.fetch_add(1, Ordering::SeqCst) + 1;
                        std::thread::sleep(Duration::from_millis(1));
                        while begun.load(Ordering::SeqCst) <= mine && !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        conn.execute_batch("COMMIT").expect("end");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect()
    }

    /// The scenario, the writes PATCHes of a user (which queue for the writers'
    /// leader) or, with `members`, member adds to a group (which take turns on a
    /// pooled connection).
    async fn truncated_once_readers_let_it(members: bool) {
        let (_scratch, path, svc) = Scratch::file_service().await;
        let path = &path;
        // A reader that stays: what it reads must not change under it.
        let pinned = rusqlite::Connection::open(path).expect("pinned");
        pinned.execute_batch("BEGIN").expect("begin");
        let resources = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM scim_resources", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(resources(&pinned), 0);
        let (path_of, body) = if members {
            (
                "/Groups",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "wal"}),
            )
        } else {
            (
                "/Users",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "wal"}),
            )
        };
        let (status, created, _) = call(&svc, post(path_of, &body)).await;
        assert_eq!(status, 201, "{created}");
        let target = format!("{path_of}/{}", created["id"].as_str().expect("id"));
        // One transaction of 20 MiB (an import, say) leaves the WAL that long.
        let filler = rusqlite::Connection::open(path).expect("filler");
        filler
            .execute_batch(
                "CREATE TABLE filler (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
                 INSERT INTO filler SELECT randomblob(4096) FROM n;",
            )
            .expect("filler");
        let grown = wal_len(path);
        assert!(grown > 20 << 20, "the WAL is {grown} bytes");
        let mut written = 0;
        let mut write = || {
            written += 1;
            let op = if members {
                json!({"op": "add", "path": "members", "value": [{"value": format!("m{written}")}]})
            } else {
                json!({"op": "replace", "path": "displayName", "value": format!("n{written}")})
            };
            let request = Request::new("PATCH", &format!("{target}?attributes=id")).with_json(
                &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]}),
            );
            let svc = &svc;
            async move {
                let (status, body, _) = call(svc, request).await;
                assert_eq!(status, 200, "{body}");
            }
        };
        // Writes for a second while the reader stays: the WAL is left as it is, and
        // no write waits for it (a try to truncate waits 10 ms at most).
        for _ in 0..50 {
            let began = Instant::now();
            write().await;
            assert!(
                began.elapsed() < Duration::from_secs(2),
                "{:?}",
                began.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(wal_len(path) >= grown, "the WAL was cut under a reader");
        assert_eq!(resources(&pinned), 0);
        pinned.execute_batch("COMMIT").expect("end");
        // The reader gone, readers that overlap without a pause; writes go on.
        let stop = Arc::new(AtomicBool::new(false));
        let readers = overlapping_readers(path, &stop);
        let deadline = Instant::now() + Duration::from_secs(30);
        while wal_len(path) >= 4 << 20 {
            assert!(
                Instant::now() < deadline,
                "the WAL is still {} bytes after {written} writes",
                wal_len(path)
            );
            write().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::SeqCst);
        for reader in readers {
            assert!(reader.join().expect("reader") > 0);
        }
        // Nothing was lost on the way.
        let count: i64 = filler
            .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
            .expect("filler rows");
        assert_eq!(count, 5000);
        let check: String = filler
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok");
        let (_, body, _) = call(&svc, Request::new("GET", &target)).await;
        if members {
            assert_eq!(body["members"].as_array().map(Vec::len), Some(written));
        } else {
            assert_eq!(body["displayName"], format!("n{written}"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_truncates_a_long_wal_once_readers_let_it() {
        truncated_once_readers_let_it(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_truncates_a_long_wal_after_member_changes_too() {
        truncated_once_readers_let_it(true).await;
    }
}
