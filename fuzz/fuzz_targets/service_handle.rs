//! `Service::handle` over a MemoryStore holding a user and a group, with arbitrary
//! method, path, query, headers and body. The input is lines: the method, the path
//! with its query, then `Name: value` headers up to an empty line, then the body.
//! Every answer is a SCIM answer: never a panic, never a 5xx but 501 (which RFC 7644
//! allows for what the service does not offer), and every error has a SCIM body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use serde_json::json;

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

fn request(data: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(data).ok()?;
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let method = lines.next()?.trim();
    let target = lines.next().unwrap_or("/").trim();
    let mut req = Request::new(method, target).with_body(body.as_bytes().to_vec());
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            req = req.with_header(name.trim(), value.trim());
        }
    }
    Some(req)
}

/// A fresh service per input, so that runs do not depend on each other.
fn service() -> Service<MemoryStore<()>> {
    let svc = Service::new(MemoryStore::new(), ServiceConfig::default());
    let user =
        json!({"userName": "bjensen", "emails": [{"value": "b@example.com", "primary": true}]});
    let created = block_on(svc.handle(&(), Request::new("POST", "/Users").with_json(&user)));
    let id = created
        .json_body()
        .and_then(|b| b["id"].as_str().map(str::to_owned));
    let group = json!({"displayName": "Tour Guides", "members": [{"value": id}]});
    block_on(svc.handle(&(), Request::new("POST", "/Groups").with_json(&group)));
    svc
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request(data) else {
        return;
    };
    let svc = service();
    let response = block_on(svc.handle(&(), req));
    assert!(
        response.status < 500 || response.status == 501,
        "{}: {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    if response.status >= 400 {
        let body = response.json_body().expect("an error has a JSON body");
        assert_eq!(
            body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{body}"
        );
        assert_eq!(body["status"], response.status.to_string(), "{body}");
    }
});
