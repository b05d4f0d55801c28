//! # scimkit-axum
//!
//! SCIM 2.0 over HTTP with [axum](https://docs.rs/axum): [`router`] turns a scimkit
//! [`Service`] and an [`Authenticate`] into an axum [`Router`] to nest at any base
//! path, and [`serve`] runs it with the timeouts and limits a public endpoint needs.
//!
//! What the router does for every request:
//! - authenticates first ([`ApiKeys`]: bearer keys per tenant, kept as hashes,
//!   revocable at once), so an unauthenticated client learns nothing; 401 carries a
//!   SCIM error body and `WWW-Authenticate: Bearer` (RFC 6750 §3);
//! - reads the body up to the service's limit (more is 413) within the request
//!   timeout (a slow body is 408);
//! - runs the service on the blocking pool for anything that may be CPU-heavy (a
//!   1,000-operation PATCH, a bulk request, a large page or group; see
//!   [`Service::is_light`]), so it never stalls the async workers that serve
//!   everything else;
//! - answers in SCIM media types (RFC 7644 §8.1), with an `X-Request-Id`;
//! - serves each request in a `tracing` span (request id, method, route template,
//!   tenant, key label) and ends it with one event (status, latency, and for a 5xx
//!   the cause behind it; a success whose follow-up work failed is a warning with
//!   its cause). The route template is `/Users/{id}`, never the raw path
//!   or query, which carry names and e-mail addresses. The same
//!   facts are attached to the response as a [`Served`] extension for metrics.
//!
//! ```no_run
//! use scimkit::service::{Service, ServiceConfig};
//! use scimkit::store::MemoryStore;
//! use scimkit_axum::{ApiKeys, MemoryKeys, ServeOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = MemoryKeys::new();
//! println!("key: {}", keys.create("acme", "okta")?.secret);
//!
//! let service = Service::new(MemoryStore::<String>::new(), ServiceConfig::default());
//! let app = axum::Router::new().nest("/scim/v2", scimkit_axum::router(service, ApiKeys::new(keys)));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! scimkit_axum::serve(listener, app, ServeOptions::default(), std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod route;
mod serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use scimkit::Error;
use scimkit::service::{Request, Response, Service};
use scimkit::store::Store;
use tracing::Instrument;

pub use auth::{
    ApiKeys, AuthError, Authenticate, BoxError, KeyHash, KeyRecord, KeyStore, MemoryKey,
    MemoryKeys, NewKey, Principal, bearer_token,
};
pub use serve::{ServeOptions, serve};

/// What the router served, attached to every response it makes as an extension, for
/// a host's metrics and access logs (it holds nothing a client sent verbatim but
/// the request id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The request id (the client's `X-Request-Id` if it was a sane one, else new).
    pub request_id: String,
    /// The route template: `/Users`, `/Users/{id}`, `/Bulk`, `other` for a path no
    /// endpoint serves. Bounded by the registry, so safe as a metrics label.
    pub route: String,
    /// The tenant, once authenticated.
    pub tenant: Option<String>,
    /// For a 5xx answer, the cause behind it; for a success, what failed in the
    /// work that followed it ([`Response::cause`](scimkit::service::Response::cause)).
    pub cause: Option<String>,
}

/// A router's settings; [`router`] takes the defaults.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    request_timeout: Duration,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RouterOptions {
    /// How long a request may take from its headers to its answer, body reading
    /// included (30 s). A body still arriving then is 408; a service still working
    /// is 503, and its work may still complete.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

struct App<S: Store, A> {
    service: Arc<Service<S>>,
    auth: A,
    options: RouterOptions,
    body_limit: usize,
}

/// The SCIM API of `service` behind `auth`, as an axum [`Router`] that serves every
/// path under it: nest it at the base path (`/scim/v2`).
pub fn router<S, A>(service: Service<S>, auth: A) -> Router
where
    S: Store + Send + Sync + 'static,
    A: Authenticate<Context = S::Context>,
{
    router_with(Arc::new(service), auth, RouterOptions::default())
}

/// [`router`] with a shared service and settings.
pub fn router_with<S, A>(service: Arc<Service<S>>, auth: A, options: RouterOptions) -> Router
where
    S: Store + Send + Sync + 'static,
    A: Authenticate<Context = S::Context>,
{
    let config = service.config();
    // One byte more than the largest body the service takes: a body that reaches
    // it is too large, and the service says so in its own words for the rest.
    let body_limit = config.max_body_bytes.max(config.bulk_max_payload_bytes) + 1;
    let app = Arc::new(App {
        service,
        auth,
        options,
        body_limit,
    });
    Router::new().fallback(handle::<S, A>).with_state(app)
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

/// The client's request id if it is short and plain, else a new one.
fn request_id(req: &HttpRequest) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(id) => id.to_owned(),
        None => {
            use std::hash::{BuildHasher, Hasher};
            static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
            let prefix = PREFIX.get_or_init(|| {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u8(0);
                h.finish() as u32
            });
            format!("{prefix:08x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
        }
    }
}

async fn handle<S, A>(State(app): State<Arc<App<S, A>>>, req: HttpRequest) -> HttpResponse
where
    S: Store + Send + Sync + 'static,
    A: Authenticate<Context = S::Context>,
{
    let started = Instant::now();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let route = route::template(app.service.registry(), req.uri().path());
    let mut served = Served {
        request_id: request_id.clone(),
        route,
        tenant: None,
        cause: None,
    };
    // Every event while the request is served (a key store's warning, say) carries
    // the request's id, method, route and, once known, tenant.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %served.route,
        tenant = tracing::field::Empty,
        key = tracing::field::Empty,
    );
    let response = serve_request(&app, req, &mut served)
        .instrument(span.clone())
        .await;
    served.cause.clone_from(&response.cause);
    let mut response = to_http(response);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| match served.cause.as_deref() {
        _ if status >= 500 => {
            let cause = served.cause.as_deref().unwrap_or("-");
            tracing::error!(status, latency_ms, cause, "request failed");
        }
        Some(cause) => {
            tracing::warn!(
                status,
                latency_ms,
                cause,
                "request done, follow-up work failed"
            );
        }
        None => tracing::info!(status, latency_ms, "request"),
    });
    response.extensions_mut().insert(served);
    response
}

async fn serve_request<S, A>(app: &App<S, A>, req: HttpRequest, served: &mut Served) -> Response
where
    S: Store + Send + Sync + 'static,
    A: Authenticate<Context = S::Context>,
{
    let deadline = tokio::time::Instant::now() + app.options.request_timeout;
    // Authentication comes first: without a credential nothing about the server is told.
    let principal = match app.auth.authenticate(req.headers()).await {
        Ok(p) => p,
        Err(AuthError::Unauthorized(detail)) => {
            return Response::error(&Error::unauthorized(detail))
                .with_header("WWW-Authenticate", "Bearer realm=\"scim\"");
        }
        Err(AuthError::Failed(e)) => return Response::error(&Error::internal(e)),
    };
    let span = tracing::Span::current();
    span.record("tenant", principal.tenant.as_str());
    span.record("key", principal.label.as_str());
    served.tenant = Some(principal.tenant.clone());

    let too_large = || {
        Response::error(&Error::payload_too_large(format!(
            "the body is larger than the limit of {} bytes",
            app.body_limit - 1
        )))
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
    let body = match tokio::time::timeout_at(deadline, to_bytes(body, app.body_limit)).await {
        Err(_) => {
            return Response::error(&Error::new(
                408,
                None,
                "the request body did not arrive in time",
            ));
        }
        Ok(Ok(bytes)) if bytes.len() >= app.body_limit => return too_large(),
        Ok(Ok(bytes)) => bytes,
        // Without a declared length the limit is met while reading; any other
        // failure is the connection's.
        Ok(Err(_)) if declared.is_none() => return too_large(),
        Ok(Err(e)) => {
            return Response::error(&Error::bad_request(format!(
                "the request body could not be read: {e}"
            )));
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
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body: body.to_vec(),
    };

    // Work that may cost CPU (bodies to parse and apply, lists, bulk, large groups)
    // runs on the blocking pool, where it cannot stall the async workers every other
    // connection needs; small reads run inline (a thread hop would cost a third of
    // their time).
    let service = Arc::clone(&app.service);
    let context = principal.context;
    let work = if service.is_light(&request) {
        tokio::spawn(async move { service.handle(&context, request).await })
    } else {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            runtime.block_on(async move { service.handle(&context, request).await })
        })
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(response)) => response,
        Ok(Err(joined)) => Response::error(&Error::internal(format!(
            "the request's task failed: {joined}"
        ))),
        Err(_) => {
            let mut timed_out = Response::error(&Error::new(
                503,
                None,
                format!(
                    "the request did not complete within {} s; it may still take effect, so \
                     read the resource before retrying",
                    app.options.request_timeout.as_secs_f64()
                ),
            ))
            .with_header("Retry-After", "1");
            timed_out.cause = Some("the request timeout passed while the service worked".into());
            timed_out
        }
    }
}
