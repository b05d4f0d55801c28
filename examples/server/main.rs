//! A complete SCIM 2.0 server: scimkit's service on axum and tokio, with its data in
//! SQLite, protected by a bearer token.
//!
//! ```text
//! cargo run --example server
//! cargo run --example server -- --listen 0.0.0.0:8080 --base-path /api/scim/v2 \
//!     --base-url https://scim.example.com/api/scim/v2 --token "$(openssl rand -hex 32)" --db scim.db
//! ```
//!
//! Options (each also has a default):
//! - `--listen ADDR`: the socket address to listen on (`127.0.0.1:8080`; port 0 picks one).
//! - `--base-path PATH`: where the API is mounted (`/scim/v2`).
//! - `--base-url URL`: the public URL of the base, for `meta.location` and `Location`
//!   (`http://ADDR/BASE`).
//! - `--token TOKEN`: the bearer token clients must send; else `SCIM_TOKEN`; else a random
//!   one is generated and printed.
//! - `--db PATH`: the SQLite database (`scim.db`; `:memory:` keeps nothing).
//! - `--patch-response resource|no-content|members-no-content`: what a successful
//!   PATCH answers (`members-no-content`: 204 for membership changes, as Okta's and
//!   Entra ID's own examples do, so adding one member to a large group never loads
//!   the group; 200 with the resource otherwise).
//! - `--allow-unknown-members`: accept group members that name no existing user or
//!   group (for identity providers that push memberships before the users); by
//!   default such a write is 400 `invalidValue`.
//!
//! It prints `listening on http://ADDR/BASE` when ready, one line per request, and
//! stops cleanly on Ctrl-C.

mod sqlite;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use scimkit::Error;
use scimkit::service::{PatchResponse, Request, Response, Service, ServiceConfig};
use sqlite::SqliteStore;
use url::Url;

struct Args {
    listen: String,
    base_path: String,
    base_url: Option<String>,
    token: Option<String>,
    db: String,
    patch_response: PatchResponse,
    allow_unknown_members: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:8080".to_owned(),
        base_path: "/scim/v2".to_owned(),
        base_url: None,
        token: None,
        db: "scim.db".to_owned(),
        patch_response: PatchResponse::NoContentForMemberChanges,
        allow_unknown_members: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value()?,
            "--base-path" => args.base_path = value()?,
            "--base-url" => args.base_url = Some(value()?),
            "--token" => args.token = Some(value()?),
            "--db" => args.db = value()?,
            "--patch-response" => {
                args.patch_response = match value()?.as_str() {
                    "resource" => PatchResponse::Resource,
                    "no-content" => PatchResponse::NoContent,
                    "members-no-content" => PatchResponse::NoContentForMemberChanges,
                    other => {
                        return Err(format!(
                            "--patch-response takes resource, no-content or members-no-content, not {other}"
                        ));
                    }
                }
            }
            "--allow-unknown-members" => args.allow_unknown_members = true,
            "-h" | "--help" => {
                return Err("usage: server [--listen ADDR] [--base-path PATH] [--base-url URL] [--token TOKEN] [--db PATH] [--patch-response resource|no-content|members-no-content] [--allow-unknown-members]".to_owned());
            }
            other => return Err(format!("unknown option {other}; try --help")),
        }
    }
    let trimmed = args.base_path.trim_end_matches('/');
    args.base_path = if trimmed.starts_with('/') || trimmed.is_empty() {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    };
    Ok(args)
}

/// 128 random bits as hex, from the standard library's randomly keyed hasher.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", part(1), part(2))
}

/// Compares in time that depends on neither where the inputs differ nor, beyond the
/// longer length, on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

struct App {
    service: Service<SqliteStore>,
    token: String,
    base_path: String,
    body_limit: usize,
}

fn to_http(resp: Response) -> HttpResponse {
    let mut out = HttpResponse::new(Body::from(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in resp.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            out.headers_mut().append(n, v);
        }
    }
    out
}

/// Writes a line to stdout, ignoring a closed pipe (`server | head` must not panic).
fn log(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

async fn handle(State(app): State<Arc<App>>, req: HttpRequest) -> HttpResponse {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let response = serve(&app, req, &path, &query).await;
    log(format_args!(
        "{method} {path}{}{query} {} {:.1?}",
        if query.is_empty() { "" } else { "?" },
        response.status(),
        started.elapsed()
    ));
    response
}

async fn serve(app: &App, req: HttpRequest, path: &str, query: &str) -> HttpResponse {
    // Authentication comes first: without a token nothing about the server is told.
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("Bearer")
                && same_secret(token.trim().as_bytes(), app.token.as_bytes())
        });
    if !authorized {
        let e =
            Error::unauthorized("a valid bearer token is required: Authorization: Bearer <token>");
        return to_http(
            Response::error(&e).with_header("WWW-Authenticate", "Bearer realm=\"scim\""),
        );
    }
    let relative = match path.strip_prefix(&app.base_path) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_owned(),
        _ => {
            return to_http(Response::error(&Error::not_found(format!(
                "nothing at {path}; the SCIM API is at {}",
                app.base_path
            ))));
        }
    };
    let too_large = || {
        let e = Error::payload_too_large(format!(
            "the body is larger than the limit of {} bytes",
            app.body_limit - 1
        ));
        to_http(Response::error(&e))
    };
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n >= app.body_limit) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, app.body_limit).await {
        Ok(bytes) if bytes.len() >= app.body_limit => return too_large(),
        Ok(bytes) => bytes,
        // Without a declared length the limit is met while reading; any other
        // failure is the connection's.
        Err(_) if declared.is_none() => return too_large(),
        Err(e) => {
            let e = Error::bad_request(format!("the request body could not be read: {e}"));
            return to_http(Response::error(&e));
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let scim_request = Request {
        method: parts.method.to_string(),
        path: relative,
        query: query.to_owned(),
        headers,
        body: body.to_vec(),
    };
    to_http(app.service.handle(&(), scim_request).await)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. Open connections then get a few seconds
/// to finish before the process ends anyway.
async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    log(format_args!("shutting down"));
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        log(format_args!("connections still open after 10 s; exiting"));
        std::process::exit(0);
    });
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err("--token must not be empty".into());
    }
    let token = match args.token.or_else(|| {
        std::env::var("SCIM_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
    }) {
        Some(t) => t,
        None => {
            let t = random_token();
            log(format_args!(
                "no --token or SCIM_TOKEN given; generated token: {t}"
            ));
            t
        }
    };
    let store = SqliteStore::open(&args.db)?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let base_url = match &args.base_url {
        Some(u) => Url::parse(u)?,
        None => Url::parse(&format!("http://{addr}{}", args.base_path))?,
    };
    let mut config = ServiceConfig::with_base_url(base_url);
    config.patch_response = args.patch_response;
    config.check_references = !args.allow_unknown_members;
    let body_limit = config.max_body_bytes.max(config.bulk_max_payload_bytes) + 1;
    let app = Arc::new(App {
        service: Service::new(store, config),
        token,
        base_path: args.base_path.clone(),
        body_limit,
    });
    let router = Router::new().fallback(handle).with_state(app);
    log(format_args!("listening on http://{addr}{}", args.base_path));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
