//! Member changes on groups of 10 and 100,000 members: `MemoryStore::update_members`
//! directly, and the service's member fast path (`PATCH /Groups/{id}` with one add or
//! one `members[value eq …]` removal) end to end. Each iteration adds a member and
//! removes it again, so the group keeps its size. Target: the time at 100,000
//! members at most twice the time at 10. The service answers 204 for member changes
//! (`PatchResponse::NoContentForMemberChanges`, as the example server does), or 200
//! with `excludedAttributes=members` (as Entra ID asks); a 200 with every member costs
//! what writing out the members costs, and is not what this measures.

use std::future::Future;
use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scimkit::service::{PatchResponse, Request, Service, ServiceConfig};
use scimkit::store::{MemberChange, MemberDelta, MemoryStore, Record, Store};
use serde_json::{Value, json};

fn block_on<F: Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn group(id: &str, members: usize) -> Record {
    let list: Vec<Value> = (0..members)
        .map(|i| json!({"value": format!("2819c223-7f76-453a-919d-{i:012}"), "display": format!("User {i}")}))
        .collect();
    Record {
        id: id.to_owned(),
        version: 1,
        resource: json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": id,
            "displayName": format!("Group of {members}"),
            "members": list,
            "meta": {"resourceType": "Group", "created": "2024-01-01T00:00:00Z", "lastModified": "2024-01-01T00:00:00Z"}
        }),
    }
}

fn delta(change: MemberChange) -> MemberDelta {
    MemberDelta {
        attribute: "members".to_owned(),
        case_exact: false,
        changes: vec![change],
        modified: Utc
            .with_ymd_and_hms(2024, 5, 13, 4, 42, 34)
            .single()
            .expect("time"),
        max_members: 1_000_000,
        member_types: Vec::new(),
    }
}

fn store_deltas(c: &mut Criterion) {
    let mut g = c.benchmark_group("members/memory_store_update_members");
    for size in [10usize, 100_000] {
        let store = MemoryStore::<()>::new();
        let gid = format!("group-{size}");
        block_on(store.create(&(), "Group", group(&gid, size), &[], &[])).expect("created");
        let add = delta(MemberChange::Add(
            json!({"value": "f648f8d5-ea4e-4cd3-8e9c-000000000001"}),
        ));
        let remove = delta(MemberChange::Remove(
            "f648f8d5-ea4e-4cd3-8e9c-000000000001".to_owned(),
        ));
        g.bench_with_input(BenchmarkId::new("add_then_remove", size), &size, |b, _| {
            b.iter(|| {
                block_on(store.update_members(&(), "Group", &gid, black_box(&add), None))
                    .expect("add");
                block_on(store.update_members(&(), "Group", &gid, black_box(&remove), None))
                    .expect("remove");
            })
        });
    }
    g.finish();
}

fn service_fast_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("members/service_patch");
    for (name, response, query) in [
        ("no_content", PatchResponse::NoContentForMemberChanges, ""),
        (
            "resource_without_members",
            PatchResponse::Resource,
            "?excludedAttributes=members",
        ),
    ] {
        for size in [10usize, 100_000] {
            let store = MemoryStore::<()>::new();
            let gid = format!("group-{size}");
            block_on(store.create(&(), "Group", group(&gid, size), &[], &[])).expect("created");
            let mut config = ServiceConfig::default();
            config.patch_response = response;
            let svc = Service::new(store, config);
            let user = block_on(svc.handle(
                &(),
                Request::new("POST", "/Users").with_json(&json!({"userName": "ann"})),
            ));
            let uid = user.json_body().expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned();
            let op = |ops: Value| {
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}).to_string()
            };
            let add = op(
                json!([{"op": "add", "path": "members", "value": [{"value": uid, "display": "Ann"}]}]),
            );
            let remove =
                op(json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]));
            let path = format!("/Groups/{gid}{query}");
            g.bench_with_input(
                BenchmarkId::new(format!("{name}/add_then_remove"), size),
                &size,
                |b, _| {
                    b.iter(|| {
                        for body in [&add, &remove] {
                            let req = Request::new("PATCH", &path)
                                .with_header("Content-Type", "application/scim+json")
                                .with_body(body.clone());
                            let resp = block_on(svc.handle(&(), black_box(req)));
                            assert!(resp.status == 200 || resp.status == 204, "{}", resp.status);
                        }
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, store_deltas, service_fast_path);
criterion_main!(benches);
