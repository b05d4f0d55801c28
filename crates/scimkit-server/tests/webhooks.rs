//! Webhooks against the binary: every provisioning event reaches a receiver on
//! loopback, signed, once per event id and in order per resource; failures are
//! retried and end as dead letters; a `kill -9` between commit and delivery loses
//! nothing; two instances on one PostgreSQL database deliver each event.

mod support;

#[path = "support/receiver.rs"]
mod receiver;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use receiver::{Answer, Receiver, SECRET};
use serde_json::{Value, json};
use support::{PgDb, Server, fixture, temp_db};

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

fn webhook_args(receiver: &Receiver) -> Vec<String> {
    vec![
        "--webhook".to_owned(),
        receiver.url.clone(),
        "--webhook-secret".to_owned(),
        SECRET.to_owned(),
        "--webhook-backoff".to_owned(),
        "0".to_owned(),
    ]
}

fn start(db: &str, receiver: &Receiver, extra: &[&str]) -> Server {
    let mut args: Vec<String> = webhook_args(receiver);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(std::path::Path::new(db), &args)
}

fn types(deliveries: &[receiver::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.event()["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Okta's lifecycle through the server: each change arrives once, signed, as a
/// SET-shaped body, in order; a receiver's failures are retried with the same id.
#[test]
fn provisioning_reaches_the_webhook_signed_and_in_order() {
    let receiver = Receiver::start(Answer::Fail(503));
    let (_dir, db) = temp_db("webhook_order");
    let server = start(db.to_str().expect("path"), &receiver, &[]);
    let (status, _, created) = server.request(
        "POST",
        "/Users",
        Some(&fixture("requests/okta-create-user")["body"]),
    );
    assert_eq!(status, 201, "{created}");
    let uid = created["id"].as_str().expect("id").to_owned();
    // The receiver fails for a while: the event is retried, with the same id.
    assert!(receiver.wait_for(10, |d| !d.is_empty()));
    std::thread::sleep(Duration::from_millis(200));
    receiver.set(Answer::Ok);
    let (status, _, _) = server.request(
        "PATCH",
        &format!("/Users/{uid}"),
        Some(&fixture("patch/okta-deactivate")["request"]),
    );
    assert_eq!(status, 200);
    let (status, _, group) = server.request(
        "POST",
        "/Groups",
        Some(&fixture("requests/okta-create-group")["body"]),
    );
    assert_eq!(status, 201);
    let gid = group["id"].as_str().expect("id").to_owned();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
    let (status, _, _) = server.request("PATCH", &format!("/Groups/{gid}"), Some(&add));
    assert!(status == 200 || status == 204);
    let (status, _, _) = server.request("DELETE", &format!("/Users/{uid}"), None);
    assert_eq!(status, 204);
    let want = [
        "created",
        "deactivated",
        "created",
        "membersAdded",
        "deleted",
        "membersRemoved",
    ];
    assert!(
        receiver.wait_for(20, |d| d.len() >= want.len()),
        "{:?}",
        types(&receiver.unique())
    );
    let unique = receiver.unique();
    assert_eq!(types(&unique), want);
    assert_eq!(
        receiver.forged(),
        0,
        "every delivery is signed with the secret"
    );
    assert!(
        receiver.deliveries().len() > unique.len(),
        "the first event was retried"
    );
    let first = &unique[0];
    assert_eq!(first.id, first.body["jti"]);
    assert_eq!(
        first.body["sub_id"],
        json!({"format": "scim", "uri": format!("/Users/{uid}")})
    );
    assert!(
        first.body["events"]["urn:ietf:params:scim:event:prov:create:notice"]["attributes"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("userName")))
    );
    assert_eq!(
        unique[1].body["events"]["urn:ietf:params:scim:event:prov:deactivate"],
        json!({})
    );
    assert_eq!(unique[3].event()["members"], json!([uid]));
    assert_eq!(unique[5].event()["resourceId"], json!(gid));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    assert!(unique.iter().all(|d| (now - d.timestamp).abs() < 120));
    // The operator sees it in the metrics.
    let metrics = metrics_text(&server);
    assert!(
        metric(&metrics, "scim_webhook_deliveries_total") >= 6.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "scim_webhook_failed_attempts_total") >= 1.0,
        "{metrics}"
    );
    server.stop();
}

fn metrics_text(server: &Server) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&server.addr).expect("connect");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// A receiver that always fails: after the last attempt the event is a dead letter
/// (listed by `events dead-letters`, counted in the metrics) and delivery goes on.
#[test]
fn failures_end_as_dead_letters_and_delivery_goes_on() {
    let receiver = Receiver::start(Answer::Fail(500));
    let (_dir, db) = temp_db("webhook_dead");
    let db = db.to_str().expect("path").to_owned();
    let server = start(&db, &receiver, &["--webhook-max-attempts", "3"]);
    let (status, _, _) = server.request("POST", "/Users", Some(&user("doomed")));
    assert_eq!(status, 201);
    assert!(receiver.wait_for(10, |_| receiver.deliveries().len() >= 3));
    // Give the server a moment to record the dead letter, then deliver normally.
    let mut dead = 0.0;
    for _ in 0..100 {
        dead = metric(&metrics_text(&server), "scim_webhook_dead_letters_total");
        if dead >= 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dead, 1.0);
    assert_eq!(
        receiver.deliveries().len(),
        3,
        "exactly max-attempts attempts"
    );
    receiver.set(Answer::Ok);
    let (status, _, _) = server.request("POST", "/Users", Some(&user("lucky")));
    assert_eq!(status, 201);
    assert!(receiver.wait_for(10, |d| d.len() == 2));
    server.stop();
    let out = support::run_server(&["--db", &db, "events", "dead-letters"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["event"]["type"], "created");
    assert!(
        lines[0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("500"))
    );
    // The operator can see the consumer and, once it is gone for good, forget it.
    let consumers = support::run_server(&["--db", &db, "events", "consumers"]);
    assert!(consumers.starts_with("webhook\t"), "{consumers}");
    support::run_server(&["--db", &db, "events", "forget", "webhook"]);
    assert_eq!(
        support::run_server(&["--db", &db, "events", "consumers"]),
        ""
    );
    assert_eq!(
        support::run_server(&["--db", &db, "events", "dead-letters"]),
        ""
    );
}

/// `kill -9` while events are committed but not yet delivered (the receiver is
/// slow), in the middle of a burst of creates: after a restart, every user that
/// exists has had its creation delivered, and no delivery names a user that was
/// never committed. The receiver de-duplicates by event id.
fn crash_between_commit_and_delivery(db: &str) {
    let receiver = Receiver::start(Answer::Slow(Duration::from_millis(20)));
    let mut server = start(db, &receiver, &[]);
    let (addr, base, token) = (
        server.addr.clone(),
        server.base.clone(),
        server.token.clone(),
    );
    let writer = std::thread::spawn(move || {
        for i in 0..10_000 {
            if support::try_request(
                &addr,
                &base,
                &token,
                "POST",
                "/Users",
                Some(&user(&format!("crash{i}"))),
            )
            .is_none()
            {
                break;
            }
        }
    });
    // Let events pile up, then kill the server without warning.
    std::thread::sleep(Duration::from_millis(1_500));
    let _ = server.child.kill();
    let _ = server.child.wait();
    writer.join().expect("writer");
    let delivered_before = receiver.unique().len();
    receiver.set(Answer::Ok);
    let server = start(db, &receiver, &[]);
    // Every user the database holds, by id.
    let mut users = HashSet::new();
    let mut start_index = 1;
    loop {
        let (status, _, page) = server.request(
            "GET",
            &format!("/Users?attributes=id&count=1000&startIndex={start_index}"),
            None,
        );
        assert_eq!(status, 200);
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        if resources.is_empty() {
            break;
        }
        start_index += resources.len();
        users.extend(
            resources
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
    }
    assert!(
        users.len() > delivered_before,
        "the crash left events undelivered"
    );
    let created = |d: &[receiver::Delivery]| -> HashSet<String> {
        d.iter()
            .filter(|d| d.event()["type"] == "created")
            .filter_map(|d| d.event()["resourceId"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        receiver.wait_for(60, |d| created(d).len() >= users.len()),
        "{} of {} creations delivered",
        created(&receiver.unique()).len(),
        users.len()
    );
    assert_eq!(
        created(&receiver.unique()),
        users,
        "one creation per committed user, no other"
    );
    assert_eq!(receiver.forged(), 0);
    server.stop();
}

#[test]
fn crash_between_commit_and_delivery_on_sqlite() {
    let (_dir, db) = temp_db("webhook_crash");
    crash_between_commit_and_delivery(db.to_str().expect("path"));
}

#[test]
fn crash_between_commit_and_delivery_on_postgres() {
    if let Some(pg) = PgDb::create("scimkit_webhook_crash") {
        crash_between_commit_and_delivery(&pg.url());
    }
}

/// Two instances on one PostgreSQL database, both with the webhook: writes through
/// both arrive once each (by id), and each resource's events in version order.
#[test]
fn two_instances_deliver_each_event_once_in_order_per_resource() {
    let Some(pg) = PgDb::create("scimkit_webhook_two") else {
        return;
    };
    let receiver = Receiver::start(Answer::Ok);
    let url = pg.url();
    let a = start(&url, &receiver, &[]);
    let b = start(&url, &receiver, &[]);
    let servers = [&a, &b];
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, _, u) =
            servers[i % 2].request("POST", "/Users", Some(&user(&format!("two{i}"))));
        assert_eq!(status, 201);
        ids.push(u["id"].as_str().expect("id").to_owned());
    }
    for round in 0..5 {
        for (i, id) in ids.iter().enumerate() {
            let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "nickName", "value": format!("r{round}")}]});
            let (status, _, _) =
                servers[(i + round) % 2].request("PATCH", &format!("/Users/{id}"), Some(&op));
            assert_eq!(status, 200);
        }
    }
    let total = 20 + 20 * 5;
    assert!(
        receiver.wait_for(30, |d| d.len() >= total),
        "{}",
        receiver.unique().len()
    );
    std::thread::sleep(Duration::from_millis(500));
    let unique = receiver.unique();
    assert_eq!(unique.len(), total, "each event once (by id)");
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for d in &unique {
        let e = d.event();
        versions
            .entry(e["resourceId"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(e["version"].as_u64().unwrap_or_default());
    }
    for id in &ids {
        assert_eq!(versions[id], (1..=6).collect::<Vec<u64>>(), "{id}");
    }
    a.stop();
    b.stop();
}
