//! The service end to end with `MemoryStore`: GET by id, a filtered list over
//! 10,000 users, and an Entra ID PATCH, each from `Request` to `Response`.

use std::future::Future;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use serde_json::{Value, json};

/// MemoryStore's futures are ready at once, so a no-op waker suffices.
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

const ENTRA_UPDATE: &str = include_str!("../tests/fixtures/patch/entra-update-user.json");

fn service(c: &mut Criterion) {
    let svc = Service::new(MemoryStore::<()>::new(), ServiceConfig::default());
    let mut some_id = String::new();
    for i in 0..10_000 {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("user{i:05}@example.com"),
            "externalId": format!("ext-{i}"),
            "name": {"givenName": "User", "familyName": format!("Number {i}")},
            "emails": [{"value": format!("user{i:05}@example.com"), "type": "work", "primary": true}],
            "active": true
        });
        let resp = block_on(svc.handle(&(), Request::new("POST", "/Users").with_json(&body)));
        assert_eq!(resp.status, 201);
        if i == 5_000 {
            let v: Value = resp.json_body().expect("json");
            some_id = v["id"].as_str().expect("id").to_owned();
        }
    }
    let get_path = format!("/Users/{some_id}");
    // Two Entra updates that differ, applied in turn, so every PATCH changes the user.
    let patch_body: Value =
        serde_json::from_str::<Value>(ENTRA_UPDATE).expect("fixture")["request"].clone();
    let mut other = patch_body.clone();
    other["Operations"][1]["value"] = json!("anotherFamilyName");
    other["Operations"][2]["value"] = json!("another-user@testuser.com");
    let bodies = [patch_body.to_string(), other.to_string()];
    let mut turn = 0usize;

    let mut g = c.benchmark_group("service");
    g.bench_function("get_by_id", |b| {
        b.iter(|| {
            let resp = block_on(svc.handle(&(), Request::new("GET", black_box(&get_path))));
            assert_eq!(resp.status, 200);
        })
    });
    g.sample_size(20);
    g.bench_function("list_filter_eq_over_10000", |b| {
        b.iter(|| {
            let req = Request::new(
                "GET",
                "/Users?filter=userName+eq+%22USER05000@example.com%22",
            );
            let resp = block_on(svc.handle(&(), black_box(req)));
            assert_eq!(resp.status, 200);
        })
    });
    g.bench_function("list_filter_co_page_100_over_10000", |b| {
        b.iter(|| {
            let req = Request::new(
                "GET",
                "/Users?filter=name.familyName+co+%22Number+1%22&count=100",
            );
            let resp = block_on(svc.handle(&(), black_box(req)));
            assert_eq!(resp.status, 200);
        })
    });
    g.sample_size(100);
    g.bench_function("entra_patch_user", |b| {
        b.iter(|| {
            turn += 1;
            let req = Request::new("PATCH", &get_path)
                .with_header("Content-Type", "application/scim+json")
                .with_body(bodies[turn % 2].clone());
            let resp = block_on(svc.handle(&(), black_box(req)));
            assert_eq!(resp.status, 200);
        })
    });
    g.finish();
}

criterion_group!(benches, service);
criterion_main!(benches);
