//! The router in process: authentication first, tenants from keys, body limits and
//! timeouts, the `Served` extension, and the same answers the service gives.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use scimkit::service::{Service, ServiceConfig};
use scimkit::store::MemoryStore;
use scimkit_axum::{
    ApiKeys, AuthError, Authenticate, MemoryKeys, Principal, RouterOptions, Served, router,
    router_with,
};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value, Served) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let served = resp.extensions().get::<Served>().cloned().expect("Served");
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        served,
    )
}

fn get(path: &str, key: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .expect("request")
}

fn post(path: &str, key: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/scim+json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn keys_select_tenants_and_nothing_is_told_without_one() {
    let keys = MemoryKeys::new();
    let acme = keys.create("acme", "okta").expect("key").secret;
    let globex = keys.create("globex", "entra").expect("key").secret;
    let service = Service::new(MemoryStore::<String>::new(), ServiceConfig::default());
    let app = router(service, ApiKeys::new(keys));

    let user =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen"});
    let (status, headers, body, served) = send(&app, post("/Users", &acme, &user)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["content-type"], "application/scim+json");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(served.route, "/Users");
    assert_eq!(served.tenant.as_deref(), Some("acme"));
    let id = body["id"].as_str().expect("id").to_owned();

    let (status, _, _, served) = send(&app, get(&format!("/Users/{id}"), &globex)).await;
    assert_eq!(status, 404);
    assert_eq!(served.route, "/Users/{id}");
    let (status, _, _, _) = send(&app, post("/Users", &globex, &user)).await;
    assert_eq!(status, 201, "the same userName in another tenant");

    for req in [
        Request::get("/Users").body(Body::empty()).expect("request"),
        get("/Users", "scim_not_a_key"),
        get("/nothing/here", "wrong"),
    ] {
        let (status, headers, body, served) = send(&app, req).await;
        assert_eq!(status, 401);
        assert_eq!(headers["www-authenticate"], "Bearer realm=\"scim\"");
        assert_eq!(
            body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        assert_eq!(served.tenant, None);
    }
}

#[tokio::test]
async fn bodies_are_limited_and_must_arrive_in_time() {
    let keys = MemoryKeys::new();
    let key = keys.create("t", "k").expect("key").secret;
    let config = ServiceConfig::default()
        .max_body_bytes(1000)
        .bulk_max_payload_bytes(1000);
    let service = std::sync::Arc::new(Service::new(MemoryStore::<String>::new(), config));
    let app = router_with(
        service,
        ApiKeys::new(keys),
        RouterOptions::default().request_timeout(Duration::from_millis(200)),
    );
    let big = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x".repeat(2000)});
    let (status, _, body, _) = send(&app, post("/Users", &key, &big)).await;
    assert_eq!(status, 413, "{body}");

    // A body that never finishes arriving: its sender stays open and silent.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let body = Body::from_stream(Chunks(rx));
    tx.try_send(Ok(axum::body::Bytes::from_static(b"{\"schemas\":")))
        .expect("first chunk");
    let req = Request::post("/Users")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/scim+json")
        .body(body)
        .expect("request");
    let (status, _, body, _) = send(&app, req).await;
    assert_eq!(status, 408, "{body}");
    drop(tx);
}

type Chunk = Result<axum::body::Bytes, std::io::Error>;

/// The chunks a channel receives, as a body stream.
struct Chunks(tokio::sync::mpsc::Receiver<Chunk>);

impl futures_core::Stream for Chunks {
    type Item = Chunk;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}

/// A key store that is down.
struct Down;

impl Authenticate for Down {
    type Context = String;
    async fn authenticate(&self, _: &HeaderMap) -> Result<Principal<String>, AuthError> {
        Err(AuthError::Failed(
            "connection refused (os error 111)".into(),
        ))
    }
}

#[tokio::test]
async fn a_failing_key_store_is_a_500_whose_cause_reaches_the_logs_not_the_client() {
    let service = Service::new(MemoryStore::<String>::new(), ServiceConfig::default());
    let app = router(service, Down);
    let (status, _, body, served) = send(&app, get("/Users", "k")).await;
    assert_eq!(status, 500);
    assert!(!body.to_string().contains("refused"), "{body}");
    assert_eq!(
        served.cause.as_deref(),
        Some("connection refused (os error 111)")
    );
}
