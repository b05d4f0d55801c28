//! A scimkit-server child process on a loopback port, and a minimal HTTP/1.1
//! client, for the tests that drive the binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A running scimkit-server, stopped with Ctrl-C (SIGINT) when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub base: String,
    /// The key `request` sends.
    pub token: String,
    /// The key the server printed on its first start, if it did.
    pub first_key: Option<String>,
    /// Every line the server printed after it started listening.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The binary under test.
pub fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scimkit-server"))
}

/// Runs `scimkit-server ARGS` to its end and returns its stdout, requiring success.
pub fn run_server(args: &[&str]) -> String {
    let out = Command::new(server_binary())
        .args(args)
        .output()
        .expect("scimkit-server runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `scimkit-server --db DB keys ARGS` and returns its stdout (the new key for
/// `create`), requiring success.
pub fn keys(db: &str, args: &[&str]) -> String {
    let mut all = vec!["--db", db, "keys"];
    all.extend_from_slice(args);
    run_server(&all)
}

/// One request that may fail because the server is gone: `None` then.
pub fn try_request(
    addr: &str,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {base}{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    if raw.windows(4).all(|w| w != b"\r\n\r\n") {
        return None;
    }
    let (status, _, json) = parse_response(&raw);
    Some((status, json))
}

/// A new key for `tenant`.
pub fn create_key(db: &str, tenant: &str, label: &str) -> String {
    keys(db, &["create", "--tenant", tenant, "--label", label])
}

impl Server {
    /// Starts the server on `db` (with `--listen 127.0.0.1:0` and `extra`), with a
    /// key for the tenant `default` that `request` uses.
    pub fn start(db: &std::path::Path, extra: &[&str]) -> Server {
        let db = db.to_str().expect("utf-8 path");
        let token = create_key(db, "default", "tests");
        let mut args = vec!["--db", db];
        args.extend_from_slice(extra);
        let mut server = Server::spawn(&args);
        server.token = token;
        server
    }

    /// Starts the server with these arguments (and `--listen 127.0.0.1:0`); `token`
    /// is the first key, if it printed one.
    pub fn spawn(args: &[&str]) -> Server {
        let mut child = Command::new(server_binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("SCIM_LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("scimkit-server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut first_key = None;
        let url = loop {
            let line = lines.next().expect("server output").expect("line");
            if let Some(key) = line.trim().strip_prefix("scim_") {
                first_key = Some(format!("scim_{key}"));
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
        Server {
            child,
            addr: addr.to_owned(),
            base: format!("/{base}"),
            token: first_key.clone().unwrap_or_default(),
            first_key,
            log,
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Vec<(String, String)>, Value) {
        self.request_as(&self.token, method, path, body)
    }

    pub fn request_as(
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

    pub fn raw(
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
    pub fn declared_length(
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

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops the server with Ctrl-C (SIGINT) and requires a clean exit.
    pub fn stop(mut self) {
        let status = self.interrupt();
        let log = self.log_lines();
        let tail = &log[log.len().saturating_sub(20)..];
        assert!(
            status.is_some_and(|s| s.success()),
            "the server did not stop cleanly: {status:?}; its last lines:\n{}",
            tail.join("\n")
        );
    }

    pub fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        // The server's own bounds add up to about 22 s (grace, event tasks, pool).
        for _ in 0..600 {
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

pub fn parse_response(raw: &[u8]) -> (u16, Vec<(String, String)>, Value) {
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

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A temporary folder, removed when dropped (also when a test fails).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_db(name: &str) -> (TempDir, PathBuf) {
    let dir = std::env::temp_dir().join(format!("scimkit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("scim.db");
    (TempDir(dir), db)
}

/// A fixture from the workspace's `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("tests").join("fixtures").is_dir() {
        assert!(dir.pop(), "tests/fixtures not found");
    }
    let path = dir
        .join("tests")
        .join("fixtures")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A PostgreSQL database of its own, dropped when this is dropped.
pub struct PgDb {
    pub name: String,
}

const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

impl PgDb {
    /// A new database; `None` (after saying so) when PostgreSQL is not reachable
    /// outside CI. In CI it must be.
    pub fn create(prefix: &str) -> Option<PgDb> {
        let mut admin = match postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
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
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        Some(PgDb { name })
    }

    /// The URL scimkit-server takes.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A client on the database.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port=5432 user=postgres dbname={}",
                self.name
            ),
            postgres::NoTls,
        )
        .expect("connect")
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
