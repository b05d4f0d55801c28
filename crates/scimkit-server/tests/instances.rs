//! Several scimkit-server processes on one database, driven alternately: every
//! guarantee (no lost member, no lost update, one owner per userName) comes from the
//! database, on PostgreSQL (three instances) and on one SQLite file (two).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use serde_json::{Value, json};
use support::{PgDb, Server, create_key, header, temp_db};

/// Counts answers by class; any 5xx fails the test at the end.
#[derive(Default)]
struct Tally {
    server_errors: AtomicUsize,
}

impl Tally {
    fn see(&self, status: u16, body: &Value) -> u16 {
        if status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("5xx: {status} {body}");
        }
        status
    }
}

fn start(db: &str, instances: usize) -> Vec<Server> {
    let key = create_key(db, "default", "instances");
    (0..instances)
        .map(|_| {
            let mut s = Server::spawn(&["--db", db, "--allow-unknown-members"]);
            s.token = key.clone();
            s
        })
        .collect()
}

fn run(db: &str, instances: usize) {
    let servers = start(db, instances);
    let tally = Tally::default();

    // 16 clients × 100 member adds to one group, each request to the next instance.
    let (status, _, group) = servers[0].request(
        "POST",
        "/Groups",
        Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"})),
    );
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().expect("id").to_owned();
    std::thread::scope(|scope| {
        for client in 0..16 {
            let (servers, gid, tally) = (&servers, &gid, &tally);
            scope.spawn(move || {
                for i in 0..100 {
                    let server = &servers[(client + i) % servers.len()];
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": format!("m-{client}-{i}")}]}]});
                    let (status, _, body) =
                        server.request("PATCH", &format!("/Groups/{gid}"), Some(&op));
                    assert_eq!(tally.see(status, &body), 204, "{body}");
                }
            });
        }
    });
    let (_, _, g) = servers[instances - 1].request("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(g["members"].as_array().map(Vec::len), Some(1600));
    assert_eq!(g["meta"]["version"], "W/\"1601\"");

    // If-Match races: every acknowledged write is a version of its own.
    let (_, _, user) = servers[0].request(
        "POST",
        "/Users",
        Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "contended"})),
    );
    let uid = user["id"].as_str().expect("id").to_owned();
    let ok = AtomicUsize::new(0);
    let stale = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for client in 0..8 {
            let (servers, uid, tally, ok, stale) = (&servers, &uid, &tally, &ok, &stale);
            scope.spawn(move || {
                for i in 0..15 {
                    let server = &servers[(client + i) % servers.len()];
                    let (_, headers, _) = server.request("GET", &format!("/Users/{uid}"), None);
                    let etag = header(&headers, "etag").expect("ETag").to_owned();
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "displayName", "value": format!("{client}-{i}")}]});
                    let bearer = format!("Bearer {}", server.token);
                    let (status, _, body) = server.raw(
                        "PATCH",
                        &format!("{}/Users/{uid}", server.base),
                        Some(op.to_string()),
                        &[
                            ("Authorization", &bearer),
                            ("Content-Type", "application/scim+json"),
                            ("If-Match", &etag),
                        ],
                    );
                    match tally.see(status, &body) {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        412 => stale.fetch_add(1, Ordering::Relaxed),
                        other => panic!("{other}: {body}"),
                    };
                }
            });
        }
    });
    let (_, _, user) = servers[1].request("GET", &format!("/Users/{uid}"), None);
    let writes = ok.load(Ordering::Relaxed);
    assert!(writes > 0);
    assert_eq!(
        user["meta"]["version"],
        json!(format!("W/\"{}\"", writes + 1)),
        "{writes} acknowledged writes, {} refused",
        stale.load(Ordering::Relaxed)
    );

    // The same userName through two instances at once: one 201, one 409.
    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(2));
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|k| {
                    let (server, barrier, tally) = (&servers[k], Arc::clone(&barrier), &tally);
                    scope.spawn(move || {
                        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("Race.{round}@Example.com")});
                        barrier.wait();
                        let (status, _, body) = server.request("POST", "/Users", Some(&body));
                        tally.see(status, &body)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("client"))
                .collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![201, 409], "round {round}");
    }

    assert_eq!(tally.server_errors.load(Ordering::Relaxed), 0, "no 5xx");
    for s in servers {
        s.stop();
    }
}

#[test]
fn three_instances_on_one_postgres_database() {
    let Some(db) = PgDb::create("scimkit_instances") else {
        return;
    };
    run(&db.url(), 3);
}

#[test]
fn two_instances_on_one_sqlite_file() {
    let (dir, db) = temp_db("instances");
    run(db.to_str().expect("utf-8"), 2);
    drop(dir);
}
