//! What an operator relies on, tried on the binary: keys per tenant, revocation,
//! restarts, probes, metrics, timeouts, connection limits and graceful shutdown.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Server, create_key, keys, run_server, temp_db};

fn user(name: &str) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

/// The id `keys list` shows for the key labelled `label`.
fn key_id(db: &str, label: &str) -> String {
    keys(db, &["list"])
        .lines()
        .find(|l| l.split('\t').nth(2) == Some(label))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("no key labelled {label}"))
        .to_owned()
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("read timeout");
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar before the close is fine; keep reading to the end.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// The number of file descriptors the process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn keys_per_tenant_isolate_revoke_at_once_and_survive_a_restart() {
    let (dir, db) = temp_db("tenants");
    let db_str = db.to_str().expect("utf-8");
    let acme = create_key(db_str, "acme", "okta");
    let globex = create_key(db_str, "globex", "entra");
    let server = Server::start(&db, &[]);
    assert!(
        server.first_key.is_none(),
        "no first key is made when keys exist"
    );

    let (status, _, a) = server.request_as(&acme, "POST", "/Users", Some(&user("bjensen")));
    assert_eq!(status, 201, "{a}");
    let id = a["id"].as_str().expect("id").to_owned();
    // globex sees nothing of acme's: not by id, not in a list or filter, and the
    // same userName is free (no 409 that would tell it exists).
    let (status, _, _) = server.request_as(&globex, "GET", &format!("/Users/{id}"), None);
    assert_eq!(status, 404);
    let (_, _, list) = server.request_as(
        &globex,
        "GET",
        "/Users?filter=userName+eq+%22bjensen%22",
        None,
    );
    assert_eq!(list["totalResults"], 0);
    let (status, _, _) = server.request_as(&globex, "PATCH", &format!("/Users/{id}"), Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]})));
    assert_eq!(status, 404);
    let (status, _, _) = server.request_as(&globex, "DELETE", &format!("/Users/{id}"), None);
    assert_eq!(status, 404);
    let (status, _, g) = server.request_as(&globex, "POST", "/Users", Some(&user("bjensen")));
    assert_eq!(status, 201, "{g}");
    let (status, _, again) = server.request_as(&acme, "GET", &format!("/Users/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(
        again["active"],
        json!(null),
        "globex's PATCH changed nothing"
    );

    // Revocation by another process takes effect on the next request.
    let okta = key_id(db_str, "okta");
    keys(db_str, &["revoke", &okta]);
    let (status, headers, err) = server.request_as(&acme, "GET", "/Users", None);
    assert_eq!(status, 401, "{err}");
    assert!(support::header(&headers, "www-authenticate").is_some());
    assert_eq!(server.request_as(&globex, "GET", "/Users", None).0, 200);
    // Last use is recorded, revocation listed.
    let listing = keys(db_str, &["list"]);
    let entra = listing
        .lines()
        .find(|l| l.contains("\tentra\t"))
        .expect("entra key listed");
    assert_ne!(entra.split('\t').nth(4), Some("-"), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&okta) && l.split('\t').nth(5) != Some("-")),
        "{listing}"
    );

    // A restart keeps the keys and makes no new one.
    server.stop();
    let mut server = Server::start(&db, &[]);
    assert!(server.first_key.is_none());
    server.token = globex.clone();
    assert_eq!(server.request("GET", "/Users", None).0, 200);
    assert_eq!(server.request_as(&acme, "GET", "/Users", None).0, 401);
    server.stop();
    drop(dir);
}

#[test]
fn the_first_key_is_made_once() {
    let (dir, db) = temp_db("first-key");
    let first = Server::spawn(&["--db", db.to_str().expect("utf-8")]);
    let key = first
        .first_key
        .clone()
        .expect("the first start prints a key");
    assert_eq!(first.request_as(&key, "GET", "/Users", None).0, 200);
    first.stop();
    // Revoking it does not make the next start create another.
    let id = key_id(db.to_str().expect("utf-8"), "initial");
    keys(db.to_str().expect("utf-8"), &["revoke", &id]);
    let second = Server::spawn(&["--db", db.to_str().expect("utf-8")]);
    assert!(second.first_key.is_none());
    assert_eq!(second.request_as(&key, "GET", "/Users", None).0, 401);
    second.stop();
    drop(dir);
}

#[test]
fn analyze_measures_the_tables() {
    let (dir, db) = temp_db("analyze");
    let path = db.to_str().expect("utf-8");
    let key = create_key(path, "acme", "okta");
    let server = Server::start(&db, &[]);
    for name in ["ada", "grace", "edsger"] {
        let (status, _, body) = server.request_as(&key, "POST", "/Users", Some(&user(name)));
        assert_eq!(status, 201, "{body}");
    }
    server.stop();
    let stat = || -> String {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.query_row(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'scim_resources_user_name'",
            [],
            |r| r.get(0),
        )
        .expect("stat")
    };
    // The guess the migrations start from, then what ANALYZE measured.
    assert!(stat().starts_with("1000000 "), "{}", stat());
    run_server(&["--db", path, "analyze"]);
    assert!(stat().starts_with("3 "), "{}", stat());
    drop(dir);
}

#[test]
fn probes_need_no_key_and_metrics_count_what_was_served() {
    let (dir, db) = temp_db("probes");
    let server = Server::start(&db, &[]);
    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = server.raw("GET", path, None, &[]);
        assert_eq!(status, 200, "{path}");
    }
    assert_eq!(server.request("POST", "/Users", Some(&user("x"))).0, 201);
    assert_eq!(server.request("POST", "/Users", Some(&user("x"))).0, 409);
    let (_, _, created) = server.request("GET", "/Users?filter=userName+eq+%22x%22", None);
    let id = created["Resources"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for _ in 0..2 {
        assert_eq!(server.request("GET", &format!("/Users/{id}"), None).0, 200);
    }
    assert_eq!(server.request_as("nope", "GET", "/Users", None).0, 401);

    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    for line in [
        "scim_http_requests_total{route=\"/Users\",method=\"POST\",status=\"201\"} 1",
        "scim_http_requests_total{route=\"/Users\",method=\"POST\",status=\"409\"} 1",
        "scim_http_requests_total{route=\"/Users/{id}\",method=\"GET\",status=\"200\"} 2",
        "scim_http_requests_total{route=\"/Users\",method=\"GET\",status=\"401\"} 1",
        "scim_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1",
        "scim_http_request_duration_seconds_count{route=\"/Users/{id}\"} 2",
        "scim_store_errors_total 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains(&id), "ids never become labels");
    server.stop();
    drop(dir);
}

#[test]
fn slow_headers_are_cut_off_and_do_not_delay_others() {
    let (dir, db) = temp_db("slowloris");
    let server = Server::start(&db, &["--header-timeout", "1"]);
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).expect("connect");
            s.write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("partial head");
            s
        })
        .collect();
    // Normal requests are served while the slow ones hang.
    for _ in 0..5 {
        assert_eq!(server.request("GET", "/Users", None).0, 200);
    }
    // Each slow connection is closed by the header timeout.
    std::thread::sleep(Duration::from_millis(1500));
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "slow connection {i} is still open"
        );
    }
    // An idle keep-alive connection is closed the same way.
    let mut idle = TcpStream::connect(&server.addr).expect("connect");
    let auth = format!("Bearer {}", server.token);
    write!(
        idle,
        "GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
    )
    .expect("write");
    let started = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(5)));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the connection was kept alive first"
    );
    server.stop();
    drop(dir);
}

#[test]
fn open_connections_are_capped() {
    let (dir, db) = temp_db("cap");
    let server = Server::start(&db, &["--max-connections", "16", "--header-timeout", "2"]);
    let pid = server.child.id();
    let before = open_fds(pid);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&server.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let during = open_fds(pid);
    assert!(
        during <= before + 16 + 2,
        "100 idle sockets, a cap of 16: {before} descriptors before, {during} during"
    );
    // As the header timeout closes idle connections, waiting ones are served.
    assert_eq!(server.request("GET", "/Users", None).0, 200);
    drop(idle);
    server.stop();
    drop(dir);
}

#[test]
fn shutdown_finishes_the_request_in_flight() {
    let (dir, db) = temp_db("shutdown");
    let mut server = Server::start(&db, &[]);
    let body = user("inflight").to_string();
    let (first, rest) = body.split_at(10);
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    write!(
        stream,
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{first}",
        server.token,
        body.len()
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    // New connections are refused now; the one in flight completes.
    assert!(
        TcpStream::connect(&server.addr).is_err(),
        "the listener is closed during shutdown"
    );
    stream.write_all(rest.as_bytes()).expect("rest of the body");
    let mut raw = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.read_to_end(&mut raw).expect("response");
    let (status, _, created) = support::parse_response(&raw);
    assert_eq!(status, 201, "{created}");
    let exit = server.child.wait().expect("exit");
    assert!(exit.success(), "{exit:?}");
    // It was committed: a new server on the same file finds it.
    let server = Server::start(&db, &[]);
    let (_, _, found) = server.request("GET", "/Users?filter=userName+eq+%22inflight%22", None);
    assert_eq!(found["totalResults"], 1);
    server.stop();
    drop(dir);
}

#[test]
fn heavy_requests_do_not_hold_up_light_ones() {
    let (dir, db) = temp_db("heavy");
    let server = Server::start(&db, &[]);
    let (_, _, probe) = server.request("POST", "/Users", Some(&user("probe")));
    let probe = probe["id"].as_str().expect("id").to_owned();
    let emails: Vec<_> = (0..900)
        .map(|i| json!({"value": format!("e{i}@example.com")}))
        .collect();
    let (status, _, heavy) = server.request(
        "POST",
        "/Users",
        Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "heavy", "emails": emails})),
    );
    assert_eq!(status, 201, "{heavy}");
    let heavy = heavy["id"].as_str().expect("id").to_owned();
    // 1,000 operations, each a filter over 900 e-mail addresses.
    let ops: Vec<_> = (0..1000)
        .map(|i| json!({"op": "replace", "path": format!("emails[value eq \"e{}@example.com\"].type", i % 900), "value": format!("t{i}")}))
        .collect();
    let patch =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let finished = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        // More heavy requests at once than the server has async workers (one per core).
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..workers + 2 {
            let (server, heavy, patch, finished) = (&server, &heavy, &patch, &finished);
            scope.spawn(move || {
                let (status, _, body) = server.request(
                    "PATCH",
                    &format!("/Users/{heavy}?attributes=id"),
                    Some(patch),
                );
                assert_eq!(status, 200, "{body}");
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        std::thread::sleep(Duration::from_millis(100));
        let (status, _, _) = server.request("GET", &format!("/Users/{probe}"), None);
        assert_eq!(status, 200);
        assert_eq!(
            finished.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the GET waited for a heavy PATCH to finish"
        );
    });
    server.stop();
    drop(dir);
}
