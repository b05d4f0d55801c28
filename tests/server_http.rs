//! The example server over real HTTP: it is started as a child process on an
//! ephemeral loopback port with a SQLite file in a temporary folder, and driven
//! the way Okta and Entra ID drive it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::json;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-5f1c";

/// A running example server, stopped with Ctrl-C (SIGINT) when dropped.
struct Server {
    child: Child,
    addr: String,
    base: String,
    /// Every line the server printed after it started listening.
    log: Arc<Mutex<Vec<String>>>,
}

fn server_binary() -> PathBuf {
    // Integration tests live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    profile_dir
        .join("examples")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX))
}

impl Server {
    fn start(db: &std::path::Path, extra: &[&str]) -> Server {
        let db = db.to_str().expect("utf-8 path");
        let mut args = vec!["--token", TOKEN, "--db", db];
        args.extend_from_slice(extra);
        Server::spawn(&args).0
    }

    /// Starts the server with these arguments (and `--listen 127.0.0.1:0`); returns it
    /// and the token it generated, if it printed one.
    fn spawn(args: &[&str]) -> (Server, Option<String>) {
        Server::spawn_with_env(args, None)
    }

    fn spawn_with_env(args: &[&str], scim_token: Option<&str>) -> (Server, Option<String>) {
        let mut command = Command::new(server_binary());
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("SCIM_TOKEN");
        if let Some(t) = scim_token {
            command.env("SCIM_TOKEN", t);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example server starts (cargo test builds examples)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut generated = None;
        let url = loop {
            let line = lines.next().expect("server output").expect("line");
            if let Some(token) = line.split("generated token: ").nth(1) {
                generated = Some(token.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("listening on http://") {
                break url.to_owned();
            }
        };
        // Keep reading the request log so the server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let (addr, base) = url.split_once('/').expect("address and base path");
        let server = Server {
            child,
            addr: addr.to_owned(),
            base: format!("/{base}"),
            log,
        };
        (server, generated)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Vec<(String, String)>, Value) {
        self.request_as(TOKEN, method, path, body)
    }

    fn request_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Vec<(String, String)>, Value) {
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/scim+json"),
        ];
        self.raw(
            method,
            &format!("{}{path}", self.base),
            body.map(|b| b.to_string()),
            &headers,
        )
    }

    fn raw(
        &self,
        method: &str,
        target: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let body = body.unwrap_or_default();
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(body.as_bytes()).expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        parse_response(&raw)
    }

    /// Sends only the head of a request that declares `length` bytes of body.
    fn declared_length(
        &self,
        method: &str,
        target: &str,
        length: usize,
        bearer: &str,
    ) -> (u16, Vec<(String, String)>, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: {bearer}\r\nContent-Type: application/scim+json\r\nContent-Length: {length}\r\n\r\n",
            self.addr
        );
        stream.write_all(head.as_bytes()).expect("write");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse_response(&raw)
    }

    fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops the server with Ctrl-C (SIGINT) and requires a clean exit.
    fn stop(mut self) {
        let status = self.interrupt();
        assert!(
            status.is_some_and(|s| s.success()),
            "the server did not stop cleanly: {status:?}"
        );
    }

    fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.interrupt();
        }
    }
}

fn parse_response(raw: &[u8]) -> (u16, Vec<(String, String)>, Value) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, json)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A temporary folder, removed when dropped (also when a test fails).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_db(name: &str) -> (TempDir, PathBuf) {
    let dir = std::env::temp_dir().join(format!("scimkit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("scim.db");
    (TempDir(dir), db)
}

fn fixture(name: &str) -> Value {
    json(&format!("fixtures/{name}.json"))
}

#[test]
fn okta_and_entra_flows_over_http_and_data_survives_a_restart() {
    let (dir, db) = temp_db("flows");
    let server = Server::start(&db, &[]);

    // Connectivity checks.
    let (status, _, body) = server.request(
        "GET",
        "/Users?filter=userName+eq+%22non-existent+user%22",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["totalResults"], 0);

    // Okta: create, look up ignoring case, PUT, deactivate.
    let (status, headers, user) = server.request(
        "POST",
        "/Users",
        Some(&fixture("requests/okta-create-user")["body"]),
    );
    assert_eq!(status, 201, "{user}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/scim+json")
    );
    let id = user["id"].as_str().expect("id").to_owned();
    let location = header(&headers, "location").expect("Location").to_owned();
    assert!(
        location.ends_with(&format!("/scim/v2/Users/{id}")),
        "{location}"
    );
    assert_eq!(user["meta"]["location"], json!(location));
    let (_, _, found) = server.request(
        "GET",
        "/Users?filter=userName%20eq%20%22TEST.USER%40okta.local%22&startIndex=1&count=100",
        None,
    );
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], json!(id));
    let mut put = fixture("requests/okta-replace-user")["body"].clone();
    put["id"] = json!(id);
    let (status, _, replaced) = server.request("PUT", &format!("/Users/{id}"), Some(&put));
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["name"]["middleName"], "Excited");
    let (status, _, deactivated) = server.request(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&fixture("patch/okta-deactivate")["request"]),
    );
    assert_eq!(status, 200);
    assert_eq!(deactivated["active"], false);

    // Entra: create a user and a group, membership changes, group rename.
    let (status, _, entra_user) = server.request(
        "POST",
        "/Users",
        Some(&fixture("requests/entra-create-user")["body"]),
    );
    assert_eq!(status, 201, "{entra_user}");
    let entra_id = entra_user["id"].as_str().expect("id").to_owned();
    let (status, _, group) = server.request(
        "POST",
        "/Groups",
        Some(&fixture("requests/entra-create-group")["body"]),
    );
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().expect("id").to_owned();
    let mut add = fixture("patch/entra-add-member")["request"].clone();
    add["Operations"][0]["value"][0]["value"] = json!(entra_id);
    let (status, headers, _) = server.request("PATCH", &format!("/Groups/{gid}"), Some(&add));
    assert_eq!(
        status, 204,
        "a membership change answers 204 on this server"
    );
    assert_eq!(header(&headers, "etag"), Some("W/\"2\""));
    let (status, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(status, 200);
    assert_eq!(g["members"], json!([{"value": entra_id}]));
    let (status, _, g) = server.request(
        "GET",
        &format!("/Groups/{gid}?excludedAttributes=members"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(g["displayName"], "displayName");
    assert!(g.get("members").is_none());
    let (_, _, u) = server.request("GET", &format!("/Users/{entra_id}"), None);
    assert_eq!(u["groups"][0]["value"], json!(gid));
    assert_eq!(u["groups"][0]["display"], "displayName");
    let (_, _, by_member) = server.request(
        "GET",
        &format!("/Groups?filter=members%5Bvalue+eq+%22{entra_id}%22%5D"),
        None,
    );
    assert_eq!(by_member["totalResults"], 1);
    let update = fixture("patch/entra-update-user")["request"].clone();
    let (status, _, patched) =
        server.request("PATCH", &format!("/Users/{entra_id}"), Some(&update));
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["emails"][0]["value"], "updatedEmail@microsoft.com");

    // Restart on the same file: everything is still there.
    server.stop();
    let server = Server::start(&db, &["--base-path", "/api/scim/v2"]);
    assert_eq!(server.base, "/api/scim/v2");
    let (status, _, again) = server.request("GET", &format!("/Users/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(again["active"], false);
    assert_eq!(again["name"]["middleName"], "Excited");
    let (status, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(status, 200);
    assert_eq!(g["members"], json!([{"value": entra_id}]));
    let (_, _, users) = server.request("GET", "/Users", None);
    assert_eq!(users["totalResults"], 2);
    // Uniqueness holds across the restart, ignoring case.
    let (status, _, dup) = server.request("POST", "/Users", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "TEST.USER@okta.local"})));
    assert_eq!(status, 409, "{dup}");
    assert_eq!(dup["scimType"], "uniqueness");
    // Delete the user: it leaves the group.
    let (status, _, _) = server.request("DELETE", &format!("/Users/{entra_id}"), None);
    assert_eq!(status, 204);
    let (status, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(status, 200);
    assert_eq!(g["id"], json!(gid));
    assert!(g.get("members").is_none(), "{g}");
    server.stop();
    drop(dir);
}

#[test]
fn authentication_and_media_types() {
    let (dir, db) = temp_db("auth");
    let server = Server::start(&db, &[]);
    let users = format!("{}/Users", server.base);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdDp0ZXN0"),
        Some("Bearer"),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        let (status, h, body) = server.raw("GET", &users, None, &headers);
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(
            header(&h, "www-authenticate").map(|v| v.starts_with("Bearer")),
            Some(true)
        );
        assert_eq!(
            body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(body["status"], "401");
    }
    let bearer = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let (status, _, _) = server.raw("GET", &users, None, &[("Authorization", &lower)]);
    assert_eq!(status, 200, "the scheme is case-insensitive");
    let body =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "media"})
            .to_string();
    let (status, _, err) = server.raw(
        "POST",
        &users,
        Some(body.clone()),
        &[("Authorization", &bearer), ("Content-Type", "text/plain")],
    );
    assert_eq!(status, 415, "{err}");
    let (status, _, _) = server.raw(
        "POST",
        &users,
        Some(body),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
    );
    assert_eq!(status, 201);
    let (status, _, err) = server.raw(
        "POST",
        &users,
        Some("{broken".to_owned()),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/scim+json"),
        ],
    );
    assert_eq!(status, 400);
    assert_eq!(err["scimType"], "invalidSyntax");
    let (status, _, err) = server.raw("GET", "/elsewhere", None, &[("Authorization", &bearer)]);
    assert_eq!(status, 404);
    assert_eq!(err["status"], "404");
    // A body declared larger than the limit is refused before it is read.
    let (status, _, err) = server.declared_length("POST", &users, 3 * 1024 * 1024, &bearer);
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["status"], "413");
    assert_eq!(status, 413);
    let (status, _, spc) = server.request("GET", "/ServiceProviderConfig", None);
    assert_eq!(status, 200);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    server.stop();
    drop(dir);
}

#[test]
fn concurrent_member_adds_over_http_lose_nothing() {
    let (dir, db) = temp_db("concurrency");
    let server = Server::start(&db, &[]);
    let (_, _, group) = server.request("POST", "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Crowd"})));
    let gid = group["id"].as_str().expect("id").to_owned();
    std::thread::scope(|scope| {
        for client in 0..8 {
            let server = &server;
            let gid = &gid;
            scope.spawn(move || {
                for i in 0..50 {
                    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("c{client}-m{i}")});
                    let (status, _, user) = server.request("POST", "/Users", Some(&user));
                    assert_eq!(status, 201, "{user}");
                    let uid = user["id"].as_str().expect("id");
                    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
                    let (status, _, body) = server.request("PATCH", &format!("/Groups/{gid}?excludedAttributes=members"), Some(&op));
                    assert_eq!(status, 204, "{body}");
                }
            });
        }
    });
    let (_, _, g) = server.request("GET", &format!("/Groups/{gid}"), None);
    let members = g["members"].as_array().expect("members");
    assert_eq!(members.len(), 400);
    assert_eq!(g["meta"]["version"], "W/\"401\"");
    server.stop();
    drop(dir);
}

#[test]
fn generated_token_base_url_and_memory_database() {
    let (server, token) = Server::spawn(&[
        "--db",
        ":memory:",
        "--base-path",
        "/api/scim/v2/",
        "--base-url",
        "https://scim.example.com/api/scim/v2",
    ]);
    let token = token.expect("a generated token is printed when none is given");
    assert_eq!(token.len(), 32);
    assert_eq!(server.base, "/api/scim/v2");
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
    let (status, headers, user) = server.request_as(&token, "POST", "/Users", Some(&body));
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id");
    let location = format!("https://scim.example.com/api/scim/v2/Users/{id}");
    assert_eq!(header(&headers, "location"), Some(location.as_str()));
    assert_eq!(user["meta"]["location"], json!(location));
    // The fixed test token is not the generated one.
    assert_eq!(server.request("GET", "/Users", None).0, 401);
    // Only the base path is served; a path that merely starts with it is not.
    let bearer = format!("Bearer {token}");
    let (status, _, _) = server.raw(
        "GET",
        "/api/scim/v2x/Users",
        None,
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 404);
    server.stop();
}

#[test]
fn sqlite_store_semantics_over_http() {
    let (dir, db) = temp_db("semantics");
    let (server, generated) =
        Server::spawn_with_env(&["--db", db.to_str().expect("utf-8")], Some(TOKEN));
    assert!(
        generated.is_none(),
        "SCIM_TOKEN is used when --token is absent"
    );
    let user = |i: usize| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("user{i:02}@example.com"), "displayName": format!("User {i:02}"), "externalId": format!("Ext-{i:02}")});
    let mut ids = Vec::new();
    for i in 0..25 {
        let (status, _, body) = server.request("POST", "/Users", Some(&user(i)));
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let count = |filter: &str| {
        let (status, _, body) = server.request("GET", &format!("/Users?filter={filter}"), None);
        assert_eq!(status, 200, "{filter}: {body}");
        body["totalResults"].as_u64().expect("totalResults")
    };
    // Pushed down, with the schema's caseExact.
    assert_eq!(count("userName+eq+%22USER07@EXAMPLE.COM%22"), 1);
    assert_eq!(count("displayName+eq+%22user+07%22"), 1);
    assert_eq!(count("externalId+eq+%22Ext-07%22"), 1);
    assert_eq!(
        count("externalId+eq+%22ext-07%22"),
        0,
        "externalId is caseExact"
    );
    assert_eq!(count(&format!("id+eq+%22{}%22", ids[3])), 1);
    assert_eq!(
        count("userName+eq+%22user01@example.com%22+or+userName+eq+%22user02@example.com%22"),
        2
    );
    assert_eq!(
        count("userName+eq+%22user01@example.com%22+and+externalId+eq+%22Ext-02%22"),
        0
    );
    // Evaluated in memory.
    assert_eq!(count("userName+sw+%22USER1%22"), 10);
    assert_eq!(count("not+(externalId+pr)"), 0);
    // Paging: stable, complete, with totals.
    let mut seen = Vec::new();
    for start in [1, 11, 21] {
        let (_, _, page) =
            server.request("GET", &format!("/Users?startIndex={start}&count=10"), None);
        assert_eq!(page["totalResults"], 25);
        assert_eq!(page["startIndex"], start);
        for r in page["Resources"].as_array().expect("Resources") {
            seen.push(r["id"].as_str().expect("id").to_owned());
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages in id order, each user once");
    let (_, _, desc) = server.request(
        "GET",
        "/Users?sortBy=userName&sortOrder=descending&count=1",
        None,
    );
    assert_eq!(desc["Resources"][0]["userName"], "user24@example.com");
    // If-Match, and a PATCH that fails part-way changes nothing.
    let id = &ids[0];
    let bearer = format!("Bearer {TOKEN}");
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "active", "value": "maybe"}
    ]});
    let (status, _, err) = server.request("PATCH", &format!("/Users/{id}"), Some(&op));
    assert_eq!(status, 400);
    assert_eq!(err["scimType"], "invalidValue");
    let (_, headers, before) = server.request("GET", &format!("/Users/{id}"), None);
    assert_eq!(before["displayName"], "User 00");
    assert_eq!(header(&headers, "etag"), Some("W/\"1\""));
    let good = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "Changed"}]});
    let stale = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/scim+json"),
        ("If-Match", "W/\"7\""),
    ];
    let target = format!("{}/Users/{id}", server.base);
    let (status, _, _) = server.raw("PATCH", &target, Some(good.to_string()), &stale);
    assert_eq!(status, 412);
    let fresh = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/scim+json"),
        ("If-Match", "W/\"1\""),
    ];
    let (status, _, after) = server.raw("PATCH", &target, Some(good.to_string()), &fresh);
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["meta"]["version"], "W/\"2\"");
    // 405 with a SCIM body and Allow.
    let (status, headers, err) = server.request("DELETE", "/Users", None);
    assert_eq!(status, 405);
    assert_eq!(err["status"], "405");
    assert!(header(&headers, "allow").is_some());
    // One log line per request: method, path, status, time.
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log_lines();
    assert!(
        log.iter()
            .any(|l| l.starts_with("DELETE /scim/v2/Users 405")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("PATCH /scim/v2/Users/{id} 412"))),
        "{log:?}"
    );
    server.stop();
    drop(dir);
}
