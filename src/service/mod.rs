//! The HTTP-agnostic SCIM service provider (RFC 7644): a [`Request`] in, a
//! [`Response`] out, for any HTTP stack.
//!
//! The host implements a [`Store`] and mounts [`Service::handle`] under its SCIM
//! base path; the service does everything else: routing, media types, validation
//! and normalisation by the schema, filtering, sorting, paging, projection, ETags
//! and conditional requests, PATCH through the [engine](crate::patch), bulk,
//! discovery, `User.groups`, and SCIM errors for every failure.
//!
//! ```
//! use scimkit::service::{Request, Service, ServiceConfig};
//! use scimkit::store::MemoryStore;
//! use serde_json::json;
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//!
//! let service = Service::new(MemoryStore::<()>::new(), ServiceConfig::default());
//! let create = Request::new("POST", "/Users").with_json(&json!({
//!     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
//!     "userName": "bjensen@example.com"
//! }));
//! let created = block_on(service.handle(&(), create));
//! assert_eq!(created.status, 201);
//! assert_eq!(created.header("ETag"), Some("W/\"1\""));
//!
//! let found = block_on(service.handle(&(), Request::new("GET", "/Users?filter=userName+eq+%22BJENSEN@example.com%22")));
//! let body = found.json_body().ok_or("not JSON")?;
//! assert_eq!(body["totalResults"], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bulk;
mod cursor;
mod discovery;
mod limits;
mod query;
mod queue;
mod references;
mod request;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use url::Url;

pub use request::{Request, Response, SCIM_MEDIA_TYPE};

use crate::error::{Error, Result, ScimType};
use crate::events::Change;
use crate::filter::{CompValue, CompareOp, Filter, FilterOptions};
use crate::message::{ListResponse, PatchOp, SearchRequest};
use crate::patch::{self, PatchOptions};
use crate::path::AttrPath;
use crate::schema::{
    Attribute, AttributeType, AuthenticationScheme, Mutability, Registry, ResourceSchema,
    Uniqueness, urn,
};
use crate::store::{
    ListQuery, MemberDelta, Membership, Projection, Record, Store, StoreError, UniqueValue,
};
use query::{ListParams, project};

/// The largest PATCH body, in bytes, that [`Service::is_light`] counts as little
/// work. The PatchOps identity providers send for one user are below it (Entra ID's
/// largest in our fixtures is about 1 KB). Such a PATCH costs what its resource
/// costs to read and write back (its lists hold at most
/// [`ServiceConfig::max_values`] values each) times the few dozen operations 2 KiB
/// can hold: for a typical user, microseconds; for the largest allowed, a few times
/// a GET of it, which is served inline too.
pub const LIGHT_PATCH_BYTES: usize = 2048;

/// Where the service takes the time from: one place, so tests can control it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, to the millisecond.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now()).trunc_subsecs(3)
    }
}

/// A clock that says what it is told: for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        FixedClock(Mutex::new(now))
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        if let Ok(mut t) = self.0.lock() {
            *t = now;
        }
    }

    /// Moves the time forward.
    pub fn advance(&self, by: chrono::TimeDelta) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|t| *t).unwrap_or_default()
    }
}

/// What a successful PATCH answers (RFC 7644 §3.5.2: 200 with the resource, or 204).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatchResponse {
    /// 200 with the whole resource, subject to `attributes` and `excludedAttributes`.
    #[default]
    Resource,
    /// 204 No Content, with the new `ETag`.
    NoContent,
    /// 204 when the PATCH only changed members through the store's member delta
    /// (Okta's and Entra ID's own examples answer membership changes so), else 200
    /// with the resource: a member change on a large group then never loads the group.
    NoContentForMemberChanges,
}

/// How the service behaves; advertised truthfully at `/ServiceProviderConfig`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// The absolute URL the SCIM API is served at, e.g. `https://example.com/scim/v2`,
    /// for `meta.location` and `Location`; without it, locations are relative to the base.
    pub base_url: Option<Url>,
    /// The most resources one list returns (`filter.maxResults`), and the page size
    /// when a client gives no `count`.
    pub max_results: usize,
    /// The largest request body accepted, in bytes (more is 413).
    pub max_body_bytes: usize,
    /// The most values one multi-valued attribute of a resource may hold (`emails`,
    /// `phoneNumbers`, an extension's lists, attributes no schema defines); more is
    /// 400 `invalidValue` naming the attribute. Group members have `max_members`.
    pub max_values: usize,
    /// The most values a list of references to other resources (a group's `members`)
    /// may hold; more is 400 `invalidValue`.
    pub max_members: usize,
    /// The largest a stored resource may be, in bytes of JSON, not counting its
    /// members (which `max_members` bounds); more is 413.
    pub max_resource_bytes: usize,
    /// The most operations in one bulk request (`bulk.maxOperations`).
    pub bulk_max_operations: usize,
    /// The largest bulk request body, in bytes (`bulk.maxPayloadSize`).
    pub bulk_max_payload_bytes: usize,
    /// How PATCH bodies are read.
    pub patch: PatchOptions,
    /// What a successful PATCH answers (RFC 7644 §3.5.2 allows 200 with the resource or 204).
    pub patch_response: PatchResponse,
    /// How many times a write that raced another writer is retried on the fresh
    /// version before giving up with 409.
    pub max_write_retries: usize,
    /// Limits for parsing filters in list queries (PATCH paths use those in `patch`).
    pub filter: FilterOptions,
    /// Whether `password` may be changed (`changePassword.supported`).
    pub change_password: bool,
    /// Whether group members (the values of any writable multi-valued attribute whose
    /// `$ref` names registered resource types) must name existing resources: a write
    /// naming unknown ids is 400 `invalidValue`. On by default; a host that syncs
    /// members before the resources they name can turn it off.
    pub check_references: bool,
    /// The authentication schemes the host enforces, for discovery.
    pub authentication_schemes: Vec<AuthenticationScheme>,
    /// A URL of human-readable help.
    pub documentation_uri: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            base_url: None,
            max_results: 200,
            max_body_bytes: 1024 * 1024,
            max_values: 1_000,
            max_members: 1_000_000,
            max_resource_bytes: 256 * 1024,
            bulk_max_operations: 1000,
            bulk_max_payload_bytes: 1024 * 1024,
            patch: PatchOptions::default(),
            patch_response: PatchResponse::Resource,
            max_write_retries: 128,
            filter: FilterOptions::default(),
            change_password: true,
            check_references: true,
            authentication_schemes: vec![AuthenticationScheme::bearer_token()],
            documentation_uri: None,
        }
    }
}

/// Chainable setters, one per field of [`ServiceConfig`], each documented by its field.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl ServiceConfig {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`max_results`](ServiceConfig#structfield.max_results).
    max_results: usize,
    /// Sets [`max_body_bytes`](ServiceConfig#structfield.max_body_bytes).
    max_body_bytes: usize,
    /// Sets [`max_values`](ServiceConfig#structfield.max_values).
    max_values: usize,
    /// Sets [`max_members`](ServiceConfig#structfield.max_members).
    max_members: usize,
    /// Sets [`max_resource_bytes`](ServiceConfig#structfield.max_resource_bytes).
    max_resource_bytes: usize,
    /// Sets [`bulk_max_operations`](ServiceConfig#structfield.bulk_max_operations).
    bulk_max_operations: usize,
    /// Sets [`bulk_max_payload_bytes`](ServiceConfig#structfield.bulk_max_payload_bytes).
    bulk_max_payload_bytes: usize,
    /// Sets [`patch`](ServiceConfig#structfield.patch).
    patch: PatchOptions,
    /// Sets [`patch_response`](ServiceConfig#structfield.patch_response).
    patch_response: PatchResponse,
    /// Sets [`max_write_retries`](ServiceConfig#structfield.max_write_retries).
    max_write_retries: usize,
    /// Sets [`filter`](ServiceConfig#structfield.filter).
    filter: FilterOptions,
    /// Sets [`change_password`](ServiceConfig#structfield.change_password).
    change_password: bool,
    /// Sets [`check_references`](ServiceConfig#structfield.check_references).
    check_references: bool,
    /// Sets [`authentication_schemes`](ServiceConfig#structfield.authentication_schemes).
    authentication_schemes: Vec<AuthenticationScheme>,
}

impl ServiceConfig {
    /// The defaults with an absolute base URL.
    ///
    /// The struct is `#[non_exhaustive]`, so it is built from the defaults and
    /// chainable setters:
    ///
    /// ```
    /// use scimkit::Url;
    /// use scimkit::service::{PatchResponse, ServiceConfig};
    ///
    /// let config = ServiceConfig::with_base_url(Url::parse("https://example.com/scim/v2")?)
    ///     .max_results(100)
    ///     .patch_response(PatchResponse::NoContentForMemberChanges);
    /// assert_eq!(config.max_results, 100);
    /// # Ok::<(), scimkit::url::ParseError>(())
    /// ```
    pub fn with_base_url(base_url: Url) -> Self {
        ServiceConfig {
            base_url: Some(base_url),
            ..ServiceConfig::default()
        }
    }

    /// Sets [`base_url`](ServiceConfig#structfield.base_url).
    #[must_use]
    pub fn base_url(mut self, base_url: Url) -> Self {
        self.base_url = Some(base_url);
        self
    }

    /// Sets [`documentation_uri`](ServiceConfig#structfield.documentation_uri).
    #[must_use]
    pub fn documentation_uri(mut self, uri: impl Into<String>) -> Self {
        self.documentation_uri = Some(uri.into());
        self
    }
}

/// A SCIM service provider over a host's [`Store`].
pub struct Service<S: Store> {
    store: S,
    registry: Registry,
    config: ServiceConfig,
    clock: Arc<dyn Clock>,
    /// This process's writes queue per resource (see [`queue`]).
    writes: queue::WriteQueue,
}

impl<S: Store> fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("registry", &self.registry)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Maps a store's answer to the SCIM error a client sees.
fn store_error(e: StoreError, what: &str) -> Error {
    match e {
        StoreError::NotFound(id) => Error::not_found(format!("{what} {id} not found")),
        StoreError::Conflict(detail) => Error::uniqueness(detail),
        StoreError::Invalid(detail) => Error::invalid_value(detail),
        StoreError::PreconditionFailed => Error::precondition_failed(format!(
            "{what} changed since the version in If-Match; read it again"
        )),
        StoreError::Backend(source) => Error::internal(source),
    }
}

/// What `If-Match` asks for.
enum Expect {
    Any,
    Versions(Vec<String>),
}

impl Expect {
    fn from(req: &Request) -> Option<Expect> {
        let header = req.header("If-Match")?;
        if header.trim() == "*" {
            return Some(Expect::Any);
        }
        Some(Expect::Versions(parse_etags(header)))
    }

    fn check(&self, version: u64, what: &str) -> Result<()> {
        match self {
            Expect::Any => Ok(()),
            Expect::Versions(v) if v.iter().any(|t| *t == version.to_string()) => Ok(()),
            Expect::Versions(_) => Err(Error::precondition_failed(format!(
                "{what} is at version {}, not the one in If-Match",
                etag(version)
            ))),
        }
    }

    /// The single version `If-Match` names, for a store's conditional write.
    fn version(&self) -> Option<u64> {
        match self {
            Expect::Versions(v) if v.len() == 1 => v[0].parse().ok(),
            _ => None,
        }
    }
}

/// The opaque values of an entity-tag list: `W/"3", "4"` gives `3` and `4`.
fn parse_etags(header: &str) -> Vec<String> {
    header
        .split(',')
        .map(|t| {
            let t = t.trim();
            let t = t
                .strip_prefix("W/")
                .or_else(|| t.strip_prefix("w/"))
                .unwrap_or(t);
            t.trim_matches('"').to_owned()
        })
        .collect()
}

/// The non-empty, percent-decoded segments of a path.
fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// Decodes `%XX` escapes in a path segment.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A new resource id: a version-4 UUID.
fn new_id() -> String {
    crate::events::random_uuid()
}

impl<S: Store> Service<S> {
    /// A service over `store` with the core registry (User, Group) and the system clock.
    pub fn new(store: S, config: ServiceConfig) -> Self {
        Service {
            store,
            registry: Registry::core(),
            config,
            clock: Arc::new(SystemClock),
            writes: queue::WriteQueue::default(),
        }
    }

    /// Uses this registry: the host's own resource types and extensions.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Takes the time from this clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The URL of something under the base: `/Users/2819c223` becomes
    /// `https://example.com/scim/v2/Users/2819c223`.
    fn location(&self, relative: &str) -> String {
        match &self.config.base_url {
            Some(base) => format!("{}{relative}", base.as_str().trim_end_matches('/')),
            None => relative.to_owned(),
        }
    }

    fn resource_location(&self, rt: &ResourceSchema<'_>, id: &str) -> String {
        let endpoint = rt.definition().endpoint.trim_end_matches('/');
        let endpoint = if endpoint.starts_with('/') {
            endpoint.to_owned()
        } else {
            format!("/{endpoint}")
        };
        self.location(&format!("{endpoint}/{id}"))
    }

    /// Serves one request. Every failure is a SCIM error response.
    pub async fn handle(&self, ctx: &S::Context, req: Request) -> Response {
        let segments = path_segments(&req.path);
        let result = match segments.as_slice() {
            [bulk] if eq(bulk, "Bulk") => match self.allow(&req, &["POST"]) {
                Ok(()) => self.bulk(ctx, &req).await,
                Err(r) => return r,
            },
            _ => return self.dispatch(ctx, &req, &segments).await,
        };
        result.unwrap_or_else(|e| Response::error(&e))
    }

    /// Whether serving `req` takes little and bounded work on the calling thread: a
    /// `GET`, `HEAD` or `DELETE` without a body, of a discovery document or of one
    /// resource, or a `PATCH` of one resource with a body of at most
    /// [`LIGHT_PATCH_BYTES`], when the resource's type holds no list of references (a
    /// group's `members` may hold up to [`ServiceConfig::max_members`] values; a
    /// user's lists are bounded by [`ServiceConfig::max_values`]). So is a look-up
    /// of such a type by `id` or another unique attribute (`GET
    /// /Users?filter=userName eq "bjensen"`: one `eq` comparison, at most one
    /// resource) from a store that [answers the filter
    /// itself](crate::store::Store::filters_itself). Everything else
    /// (larger bodies, other lists and searches, bulk, large groups) may cost
    /// milliseconds of CPU: an async host runs those where they cannot stall other
    /// requests (tokio's blocking pool) and may run these inline, sparing them a
    /// thread hop.
    ///
    /// ```
    /// use scimkit::service::{Request, Service, ServiceConfig};
    /// use scimkit::store::MemoryStore;
    ///
    /// let service = Service::new(MemoryStore::<()>::new(), ServiceConfig::default());
    /// let deactivate = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    ///     "Operations":[{"op":"replace","path":"active","value":false}]}"#;
    /// assert!(service.is_light(&Request::new("GET", "/Users/2819c223")));
    /// assert!(service.is_light(&Request::new("PATCH", "/Users/2819c223").with_body(&deactivate[..])));
    /// assert!(!service.is_light(&Request::new("PATCH", "/Groups/e9e30dba").with_body(&deactivate[..])));
    /// assert!(!service.is_light(&Request::new("GET", "/Groups/e9e30dba")));
    /// assert!(!service.is_light(&Request::new("GET", "/Users?filter=userName%20eq%20%22x%22")));
    /// assert!(!service.is_light(&Request::new("PUT", "/Users/2819c223").with_body(&deactivate[..])));
    /// ```
    pub fn is_light(&self, req: &Request) -> bool {
        let read =
            ["GET", "HEAD", "DELETE"].iter().any(|m| eq(m, &req.method)) && req.body.is_empty();
        let small_patch = eq("PATCH", &req.method) && req.body.len() <= LIGHT_PATCH_BYTES;
        if !read && !small_patch {
            return false;
        }
        let segments = path_segments(&req.path);
        match segments.as_slice() {
            [s, ..]
                if ["ServiceProviderConfig", "ResourceTypes", "Schemas"]
                    .iter()
                    .any(|d| eq(d, s)) =>
            {
                read && segments.len() <= 2
            }
            [endpoint, id] if !eq(id, ".search") => self
                .registry
                .resource_type_by_endpoint(endpoint)
                .is_some_and(|rt| holds_no_reference_list(&rt)),
            [endpoint] if read && !eq("DELETE", &req.method) => self
                .registry
                .resource_type_by_endpoint(endpoint)
                .is_some_and(|rt| holds_no_reference_list(&rt) && self.unique_look_up(&rt, req)),
            _ => false,
        }
    }

    /// Whether `req` lists the resources of `rt` whose `id`, or another attribute
    /// whose values the store keeps unique ([`kept_unique`]), equals a string: at
    /// most one resource, from a store that finds it itself.
    fn unique_look_up(&self, rt: &ResourceSchema<'_>, req: &Request) -> bool {
        /// Longer than any look-up by a value a store keeps unique (an e-mail
        /// address is at most 254 characters): not parsed here.
        const LONGEST: usize = 1024;
        let params = ListParams::from_query(&req.query);
        let Some(Ok(filter)) = params
            .filter
            .as_deref()
            .filter(|f| f.len() <= LONGEST)
            .map(|f| self.config.filter.parse(f))
        else {
            return false;
        };
        let Filter::Compare(path, CompareOp::Eq, CompValue::String(_)) = &filter else {
            return false;
        };
        let unique = path.sub_attr().is_none()
            && rt
                .attribute(path.schema(), path.name())
                .is_some_and(|found| {
                    let a = found.attribute;
                    // The common `id` resolves before any core attribute of its name.
                    let key = a.name() == "id";
                    let claimed = rt.core().attributes.iter().any(|c| std::ptr::eq(c, a))
                        && kept_unique(a)
                        && matches!(
                            a.attr_type(),
                            AttributeType::String | AttributeType::Reference
                        );
                    !found.extension && (key || claimed)
                });
        unique && self.store.filters_itself(rt.name(), &filter)
    }

    /// Refuses a method the endpoint does not serve: 405 with `Allow`.
    fn allow(&self, req: &Request, methods: &[&str]) -> std::result::Result<(), Response> {
        if methods.iter().any(|m| eq(m, &req.method)) {
            return Ok(());
        }
        let list = methods.join(", ");
        let e = Error::method_not_allowed(format!(
            "{} is not allowed on {}; use {list}",
            req.method.to_ascii_uppercase(),
            req.path
        ));
        Err(Response::error(&e).with_header("Allow", list))
    }

    /// Every endpoint but `/Bulk` (which calls back into this one).
    async fn dispatch(&self, ctx: &S::Context, req: &Request, segments: &[String]) -> Response {
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = req.method.to_ascii_uppercase();
        let allowed: &[&str] = match seg.as_slice() {
            [] => &[],
            [s, ..]
                if eq(s, "ServiceProviderConfig") || eq(s, "ResourceTypes") || eq(s, "Schemas") =>
            {
                &["GET"]
            }
            [".search"] | [_, ".search"] => &["POST"],
            [s] if eq(s, "Bulk") => &["POST"],
            [_] => &["GET", "POST"],
            [_, _] => &["GET", "PUT", "PATCH", "DELETE"],
            _ => &[],
        };
        if allowed.is_empty() {
            return Response::error(&Error::not_found(format!(
                "no SCIM endpoint at {}",
                if req.path.is_empty() { "/" } else { &req.path }
            )));
        }
        if let Err(r) = self.allow(req, allowed) {
            return r;
        }
        let result = match (seg.as_slice(), method.as_str()) {
            ([s], _) if eq(s, "ServiceProviderConfig") => {
                Ok(self.service_provider_config_response())
            }
            ([s], _) if eq(s, "ResourceTypes") => Ok(self.resource_types_response()),
            ([s, name], _) if eq(s, "ResourceTypes") => self.resource_type_response(name),
            ([s], _) if eq(s, "Schemas") => Ok(self.schemas_response()),
            ([s, id], _) if eq(s, "Schemas") => self.schema_response(id),
            ([s], _) if eq(s, "Bulk") => Err(Error::bad_request("bulk requests cannot be nested")),
            ([s, ..], _) if eq(s, "Me") => Err(Error::not_implemented(
                "the /Me endpoint is not supported here (RFC 7644 §3.11); use /Users/{id}",
            )),
            ([".search"], _) => self.root_search(ctx, req).await,
            ([endpoint, rest @ ..], _) => match self.registry.resource_type_by_endpoint(endpoint) {
                None => Err(Error::not_found(format!("no SCIM endpoint at /{endpoint}"))),
                Some(rt) => match (rest, method.as_str()) {
                    ([], "GET") => {
                        self.list(ctx, &rt, ListParams::from_query(&req.query))
                            .await
                    }
                    ([], _) => self.create(ctx, &rt, req).await,
                    ([".search"], _) => self.search(ctx, &rt, req).await,
                    ([id], "GET") => self.get(ctx, &rt, id, req).await,
                    ([id], "PUT") => self.replace(ctx, &rt, id, req).await,
                    ([id], "PATCH") => self.patch(ctx, &rt, id, req).await,
                    ([id], _) => self.delete(ctx, &rt, id, req).await,
                    _ => Err(Error::not_found(format!(
                        "no SCIM endpoint at {}",
                        req.path
                    ))),
                },
            },
            _ => Err(Error::not_found(format!(
                "no SCIM endpoint at {}",
                req.path
            ))),
        };
        result.unwrap_or_else(|e| Response::error(&e))
    }

    /// The request body as JSON: media type checked, size bounded.
    fn body_json(&self, req: &Request, limit: usize) -> Result<Value> {
        if let Some(ct) = req.header("Content-Type") {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !(eq(media, SCIM_MEDIA_TYPE) || eq(media, "application/json")) {
                return Err(Error::unsupported_media_type(format!(
                    "the body must be application/scim+json or application/json, not {media}"
                )));
            }
        }
        if req.body.len() > limit {
            return Err(Error::payload_too_large(format!(
                "the body is {} bytes, more than the limit of {limit}",
                req.body.len()
            )));
        }
        if req.body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid_syntax("the request has no body"));
        }
        serde_json::from_slice(&req.body)
            .map_err(|e| Error::invalid_syntax(format!("the body is not valid JSON: {e}")))
    }

    /// The resource a POST or PUT body describes: limits checked on what was sent
    /// (before normalising can multiply it) and on the result, names and values
    /// normalised, `schemas` completed, read-only values dropped, required ones there.
    fn resource_body(&self, rt: &ResourceSchema<'_>, req: &Request) -> Result<Map<String, Value>> {
        let body = self.body_json(req, self.config.max_body_bytes)?;
        if let Value::Object(raw) = &body {
            self.check_limits(rt, raw)?;
        }
        let Value::Object(mut doc) = rt.normalize(body)? else {
            return Err(Error::invalid_syntax("a resource must be a JSON object"));
        };
        self.ensure_schemas(rt, &mut doc)?;
        self.strip_read_only(rt, &mut doc);
        self.check_required(rt, &doc)?;
        self.check_limits(rt, &doc)?;
        Ok(doc)
    }

    /// Makes `schemas` list the core schema and every extension present; refuses a
    /// document for another resource type.
    fn ensure_schemas(&self, rt: &ResourceSchema<'_>, doc: &mut Map<String, Value>) -> Result<()> {
        let listed: Vec<String> = match doc.get("schemas") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for other in self.registry.resource_types() {
            let other_core = &other.core().id;
            if other.name() != rt.name()
                && !eq(other_core, &rt.core().id)
                && listed.iter().any(|s| eq(s, other_core))
            {
                return Err(Error::invalid_value(format!(
                    "schemas lists {other_core}, which is not the {} schema",
                    rt.name()
                )));
            }
        }
        let mut schemas = listed;
        if !schemas.iter().any(|s| eq(s, &rt.core().id)) {
            schemas.insert(0, rt.core().id.clone());
        }
        for (ext, required) in rt.extensions() {
            let present = doc.contains_key(&ext.id);
            if present && !schemas.iter().any(|s| eq(s, &ext.id)) {
                schemas.push(ext.id.clone());
            }
            if required && !present {
                return Err(Error::invalid_value(format!(
                    "the extension {} is required",
                    ext.id
                )));
            }
        }
        doc.insert(
            "schemas".to_owned(),
            Value::Array(schemas.into_iter().map(Value::String).collect()),
        );
        Ok(())
    }

    fn check_required(&self, rt: &ResourceSchema<'_>, doc: &Map<String, Value>) -> Result<()> {
        let missing = |attrs: &[crate::schema::Attribute], obj: &Map<String, Value>| {
            attrs
                .iter()
                .filter(|a| a.is_required() && a.mutability() != Mutability::ReadOnly)
                .find(|a| obj.get(a.name()).is_none_or(Value::is_null))
                .map(|a| a.name().to_owned())
        };
        if let Some(name) = missing(&rt.core().attributes, doc) {
            return Err(Error::invalid_value(format!("'{name}' is required")));
        }
        for (ext, _) in rt.extensions() {
            if let Some(Value::Object(obj)) = doc.get(&ext.id) {
                if let Some(name) = missing(&ext.attributes, obj) {
                    return Err(Error::invalid_value(format!(
                        "'{}:{name}' is required",
                        ext.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The values the store must keep unique (see [`kept_unique`]).
    fn unique_values(&self, rt: &ResourceSchema<'_>, doc: &Map<String, Value>) -> Vec<UniqueValue> {
        rt.core()
            .attributes
            .iter()
            .filter(|a| kept_unique(a))
            .filter_map(|a| {
                let v = doc.get(a.name())?.as_str()?;
                Some(UniqueValue {
                    attribute: a.name().to_owned(),
                    value: if a.is_case_exact() {
                        v.to_owned()
                    } else {
                        v.to_lowercase()
                    },
                })
            })
            .collect()
    }

    /// Drops what clients may not set: readOnly attributes and sub-attributes
    /// (RFC 7643 §7; on create and replace they are ignored, RFC 7644 §3.5.1).
    fn strip_read_only(&self, rt: &ResourceSchema<'_>, doc: &mut Map<String, Value>) {
        fn strip(attrs: &[crate::schema::Attribute], obj: &mut Map<String, Value>) {
            for a in attrs {
                if a.mutability() == Mutability::ReadOnly {
                    obj.remove(a.name());
                } else if a.is_complex() {
                    let subs: Vec<&str> = a
                        .sub_attributes()
                        .iter()
                        .filter(|s| s.mutability() == Mutability::ReadOnly)
                        .map(|s| s.name())
                        .collect();
                    let clean = |v: &mut Value| {
                        if let Value::Object(o) = v {
                            for s in &subs {
                                o.remove(*s);
                            }
                        }
                    };
                    match obj.get_mut(a.name()) {
                        Some(Value::Array(items)) => items.iter_mut().for_each(clean),
                        Some(v) => clean(v),
                        None => {}
                    }
                }
            }
        }
        strip(crate::schema::Schema::common_attributes(), doc);
        strip(&rt.core().attributes, doc);
        for (ext, _) in rt.extensions() {
            if let Some(Value::Object(obj)) = doc.get_mut(&ext.id) {
                strip(&ext.attributes, obj);
            }
        }
    }

    /// A stored resource as it is served: `meta` completed, `User.groups` derived,
    /// `returned` and the projection applied.
    fn render(
        &self,
        rt: &ResourceSchema<'_>,
        record: Record,
        projection: &Projection,
        groups: Option<&HashMap<String, Vec<Value>>>,
    ) -> Value {
        let Record {
            id,
            version,
            resource,
        } = record;
        let mut doc = match resource {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let meta = doc
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.entry("resourceType")
                .or_insert_with(|| Value::String(rt.name().to_owned()));
            meta.insert(
                "location".to_owned(),
                Value::String(self.resource_location(rt, &id)),
            );
            meta.insert("version".to_owned(), Value::String(etag(version)));
        }
        if let Some(list) = groups.and_then(|g| g.get(&id)) {
            doc.insert("groups".to_owned(), Value::Array(list.clone()));
        }
        doc.insert("id".to_owned(), Value::String(id));
        project(rt, &mut doc, projection);
        Value::Object(doc)
    }

    fn resource_response(
        &self,
        status: u16,
        rt: &ResourceSchema<'_>,
        record: Record,
        projection: &Projection,
        groups: Option<&HashMap<String, Vec<Value>>>,
    ) -> Response {
        let location = (status == 201).then(|| self.resource_location(rt, &record.id));
        let tag = etag(record.version);
        let body = self.render(rt, record, projection, groups);
        let response = Response::json(status, &body).with_header("ETag", tag);
        match location {
            Some(l) => response.with_header("Location", l),
            None => response,
        }
    }

    /// A stored resource, or 404.
    async fn load(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        id: &str,
        projection: &Projection,
    ) -> Result<Record> {
        self.store
            .get(ctx, rt.name(), id, projection)
            .await
            .map_err(|e| store_error(e, rt.name()))
    }

    /// The response for one resource, with its derived `groups`.
    async fn respond(
        &self,
        ctx: &S::Context,
        status: u16,
        rt: &ResourceSchema<'_>,
        record: Record,
        projection: &Projection,
    ) -> Result<Response> {
        let groups = self
            .groups_for(ctx, rt, std::slice::from_ref(&record), projection)
            .await?;
        Ok(self.resource_response(status, rt, record, projection, groups.as_ref()))
    }

    /// Whether `rt` has the read-only `groups` that RFC 7643 §4.1.2 derives from
    /// group memberships, and there is a Group type to derive it from.
    fn has_derived_groups(&self, rt: &ResourceSchema<'_>) -> bool {
        let has_groups = rt
            .core()
            .attribute("groups")
            .is_some_and(|a| a.mutability() == Mutability::ReadOnly && a.is_complex());
        has_groups
            && self
                .registry
                .resource_type("Group")
                .is_some_and(|g| g.core().attribute("members").is_some())
    }

    /// Whether groups may list resources of `rt` as members: the Group type's
    /// `members.$ref` names it among its reference types (RFC 7643 §4.2: users and
    /// groups), so a deleted group leaves the groups it was nested in.
    fn group_members_reference(&self, rt: &ResourceSchema<'_>) -> bool {
        self.registry
            .resource_type("Group")
            .and_then(|g| g.core().attribute("members"))
            .and_then(|m| m.sub_attribute("$ref"))
            .is_some_and(|r| {
                r.reference_types()
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(rt.name()))
            })
    }

    /// `groups` for each of `ids`: the groups whose members include them, as
    /// `{value, $ref, display, type: "direct"}`.
    async fn groups_of(
        &self,
        ctx: &S::Context,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<Value>>> {
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        let Some(groups) = self.registry.resource_type("Group") else {
            return Ok(out);
        };
        let Some(members) = groups.core().attribute("members") else {
            return Ok(out);
        };
        let case_exact = members
            .sub_attribute("value")
            .is_some_and(|v| v.is_case_exact());
        let key = |id: &str| {
            if case_exact {
                id.to_owned()
            } else {
                id.to_lowercase()
            }
        };
        for chunk in ids.chunks(50) {
            // The ids asked for, by their comparable form.
            let asked: HashMap<String, &str> = chunk.iter().map(|id| (key(id), *id)).collect();
            let found = match self
                .store
                .memberships(ctx, groups.name(), members.name(), chunk)
                .await
                .map_err(|e| store_error(e, groups.name()))?
            {
                Some(found) => found,
                None => self.memberships_by_listing(ctx, &groups, chunk).await?,
            };
            for m in found {
                let Some(user) = asked.get(&key(&m.member)) else {
                    continue;
                };
                let mut entry = Map::new();
                entry.insert("value".to_owned(), Value::String(m.group.clone()));
                entry.insert(
                    "$ref".to_owned(),
                    Value::String(self.resource_location(&groups, &m.group)),
                );
                if let Some(d) = m.display_name {
                    entry.insert("display".to_owned(), Value::String(d));
                }
                entry.insert("type".to_owned(), Value::String("direct".to_owned()));
                let list = out.entry((*user).to_owned()).or_default();
                if !list.iter().any(|e| e.get("value") == entry.get("value")) {
                    list.push(Value::Object(entry));
                }
            }
        }
        Ok(out)
    }

    /// Memberships for a store that cannot answer them directly: the groups a
    /// `members.value` filter finds, members and all.
    async fn memberships_by_listing(
        &self,
        ctx: &S::Context,
        groups: &ResourceSchema<'_>,
        ids: &[&str],
    ) -> Result<Vec<Membership>> {
        let projection = Projection {
            attributes: vec![AttrPath::new("displayName"), AttrPath::new("members")],
            excluded: Vec::new(),
        };
        let parts: Vec<Filter> = ids
            .iter()
            .map(|id| {
                Filter::eq(
                    AttrPath::new("members").with_sub_attr("value"),
                    CompValue::from(*id),
                )
            })
            .collect();
        let filter = match parts.len() {
            1 => parts.into_iter().next(),
            _ => Some(Filter::Or(parts)),
        };
        let query = ListQuery {
            schema: *groups,
            filter: filter.as_ref(),
            sort: None,
            start_index: 1,
            count: usize::MAX,
            after: None,
            count_total: true,
            projection: &projection,
        };
        let page = self
            .store
            .list(ctx, groups.name(), &query)
            .await
            .map_err(|e| store_error(e, groups.name()))?;
        let mut out = Vec::new();
        for record in page.records {
            let display_name = record
                .resource
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let members = record.resource.get("members").and_then(Value::as_array);
            for member in members.into_iter().flatten() {
                if let Some(id) = member.get("value").and_then(Value::as_str) {
                    out.push(Membership {
                        group: record.id.clone(),
                        display_name: display_name.clone(),
                        member: id.to_owned(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn groups_for(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        records: &[Record],
        projection: &Projection,
    ) -> Result<Option<HashMap<String, Vec<Value>>>> {
        if !self.has_derived_groups(rt) || !projection.wants("groups") || records.is_empty() {
            return Ok(None);
        }
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        self.groups_of(ctx, &ids).await.map(Some)
    }

    fn query_projection(&self, req: &Request) -> Result<Projection> {
        let params = ListParams::from_query(&req.query);
        query::projection(params.attributes.as_deref(), params.excluded.as_deref())
    }

    /// POST: create (RFC 7644 §3.3).
    async fn create(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        req: &Request,
    ) -> Result<Response> {
        let projection = self.query_projection(req)?;
        let mut doc = self.resource_body(rt, req)?;
        self.check_references(ctx, rt, &doc, None).await?;
        let id = new_id();
        let time = self.now();
        let now = crate::store::timestamp(time);
        doc.insert("id".to_owned(), Value::String(id.clone()));
        doc.insert(
            "meta".to_owned(),
            json!({"resourceType": rt.name(), "created": now, "lastModified": now}),
        );
        let unique = self.unique_values(rt, &doc);
        let events = Change {
            rt,
            id: &id,
            version: 1,
            time,
        }
        .created(&doc);
        let record = Record {
            id,
            version: 1,
            resource: Value::Object(doc),
        };
        let stored = self
            .store
            .create(ctx, rt.name(), record, &unique, &events)
            .await
            .map_err(|e| store_error(e, rt.name()))?;
        self.respond(ctx, 201, rt, stored, &projection).await
    }

    /// GET by id (RFC 7644 §3.4.1), honouring `If-None-Match` (§3.14).
    async fn get(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        id: &str,
        req: &Request,
    ) -> Result<Response> {
        let projection = self.query_projection(req)?;
        let record = self.load(ctx, rt, id, &projection).await?;
        if let Some(tags) = req.header("If-None-Match") {
            let tags = parse_etags(tags);
            if tags
                .iter()
                .any(|t| t == "*" || *t == record.version.to_string())
            {
                return Ok(Response::empty(304).with_header("ETag", etag(record.version)));
            }
        }
        self.respond(ctx, 200, rt, record, &projection).await
    }

    /// GET with a query (RFC 7644 §3.4.2).
    async fn list(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        params: ListParams,
    ) -> Result<Response> {
        let mut plan = query::plan(
            &params,
            Some(rt),
            &self.config.filter,
            self.config.max_results,
        )?;
        if let Some(f) = &plan.filter {
            if self.has_derived_groups(rt) && filter_mentions(f, "groups", &rt.core().id) {
                return Err(Error::invalid_filter(
                    "'groups' is derived from group memberships and cannot be filtered on; \
                     list /Groups?filter=members.value eq \"<id>\" instead",
                ));
            }
        }
        if let Some(sort) = &plan.sort {
            query::check_sort(rt, sort)?;
        }
        // Cursor pagination (RFC 9865 §2): the position the cursor carries, checked
        // to belong to this listing.
        let paging = match &plan.cursor {
            None => None,
            Some(text) => Some(self.cursor_position(rt, &plan, text)?),
        };
        // A later page without `count` keeps the listing's page size.
        if let Some(Some((_, _, count))) = &paging {
            plan.count = *count;
        }
        let paging = paging.map(|p| p.map(|(position, total, _)| (position, total)));
        let (after, start_index) = match &paging {
            None => (None, plan.start_index),
            // The first page of a listing in id order is a keyset page too (after
            // the empty id), so every page comes in the same order.
            Some(None) => (plan.sort.is_none().then_some(""), 1),
            Some(Some((cursor::Position::After(id), _))) => (Some(id.as_str()), 1),
            Some(Some((cursor::Position::Offset(n), _))) => (None, n.saturating_add(1)),
        };
        // Later cursor pages report the total their listing began with.
        let known_total = match &paging {
            Some(Some((_, total))) => Some(*total),
            _ => None,
        };
        // A cursor page asks for one more than it returns: whether it came tells
        // whether there is a next page.
        let wanted = match (&paging, plan.count) {
            (Some(_), n) if n > 0 => n + 1,
            (_, n) => n,
        };
        let query = ListQuery {
            schema: *rt,
            filter: plan.filter.as_ref(),
            sort: plan.sort.as_ref(),
            start_index,
            count: wanted,
            after,
            count_total: known_total.is_none(),
            projection: &plan.projection,
        };
        let mut page = self
            .store
            .list(ctx, rt.name(), &query)
            .await
            .map_err(|e| store_error(e, rt.name()))?;
        let next_cursor = match &paging {
            Some(_) if page.records.len() > plan.count => {
                page.records.truncate(plan.count);
                let position = match (&plan.sort, page.records.last()) {
                    (None, Some(last)) => cursor::Position::After(last.id.clone()),
                    _ => cursor::Position::Offset(start_index - 1 + plan.count),
                };
                Some(
                    cursor::Cursor {
                        fingerprint: cursor::fingerprint(
                            rt.name(),
                            plan.filter.as_ref(),
                            plan.sort.as_ref(),
                        ),
                        count: plan.count,
                        total: known_total.unwrap_or(page.total_results as u64),
                        position,
                    }
                    .encode(),
                )
            }
            _ => None,
        };
        let groups = self
            .groups_for(ctx, rt, &page.records, &plan.projection)
            .await?;
        let resources: Vec<Value> = page
            .records
            .into_iter()
            .map(|r| self.render(rt, r, &plan.projection, groups.as_ref()))
            .collect();
        let mut list = ListResponse::new(
            resources,
            known_total.unwrap_or(page.total_results as u64),
            plan.start_index as u64,
        );
        if paging.is_some() {
            // RFC 9865's pages carry nextCursor, not startIndex.
            list.start_index = None;
            list.next_cursor = next_cursor;
        }
        Ok(Response::json(200, &list))
    }

    /// The position a list's `cursor` names: none for the first page (an empty
    /// cursor), else the one it encodes, if it was issued for this very listing.
    fn cursor_position(
        &self,
        rt: &ResourceSchema<'_>,
        plan: &query::ListPlan,
        text: &str,
    ) -> Result<Option<(cursor::Position, u64, usize)>> {
        if plan.start_index_given {
            return Err(Error::invalid_value(
                "a list takes startIndex (index pagination) or cursor (cursor pagination, \
                 RFC 9865), not both",
            ));
        }
        if text.is_empty() {
            return Ok(None);
        }
        let c = cursor::Cursor::decode(text)?;
        if c.fingerprint != cursor::fingerprint(rt.name(), plan.filter.as_ref(), plan.sort.as_ref())
        {
            return Err(Error::invalid_cursor(
                "the cursor belongs to another listing: send the first page's filter, sortBy \
                 and sortOrder unchanged with each nextCursor",
            ));
        }
        if plan.count_given && c.count != plan.count {
            return Err(Error::invalid_count(format!(
                "the cursor's listing has pages of {}; send the first page's count with each \
                 nextCursor",
                c.count
            )));
        }
        Ok(Some((c.position, c.total, c.count)))
    }

    /// POST `.search` on an endpoint (RFC 7644 §3.4.3).
    async fn search(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        req: &Request,
    ) -> Result<Response> {
        let search = self.search_request(req)?;
        self.list(ctx, rt, ListParams::from_search(search)).await
    }

    fn search_request(&self, req: &Request) -> Result<SearchRequest> {
        let body = self.body_json(req, self.config.max_body_bytes)?;
        let search: SearchRequest = serde_json::from_value(body)
            .map_err(|e| Error::invalid_syntax(format!("the body is not a SearchRequest: {e}")))?;
        if !search.schemas.is_empty() && !search.schemas.iter().any(|s| eq(s, urn::SEARCH_REQUEST))
        {
            return Err(Error::invalid_syntax(format!(
                "a SearchRequest's schemas must be [\"{}\"]",
                urn::SEARCH_REQUEST
            )));
        }
        Ok(search)
    }

    /// POST `/.search` at the root: every resource type, one after the other.
    async fn root_search(&self, ctx: &S::Context, req: &Request) -> Result<Response> {
        let params = ListParams::from_search(self.search_request(req)?);
        let probe = query::plan(&params, None, &self.config.filter, self.config.max_results)?;
        if probe.cursor.is_some() {
            return Err(Error::invalid_value(
                "cursor pagination is offered per resource type (POST /Users/.search); a \
                 search across every type pages by startIndex",
            ));
        }
        let wanted = probe
            .start_index
            .saturating_sub(1)
            .saturating_add(probe.count);
        let mut total = 0usize;
        let mut found: Vec<(Option<crate::store::query::SortKey>, Value)> = Vec::new();
        for rt in self.registry.resource_types() {
            let plan = query::plan(
                &params,
                Some(&rt),
                &self.config.filter,
                self.config.max_results,
            )?;
            // Each type sorts by the attribute if it has it.
            let sort = match &plan.sort {
                Some(s) if query::sort_attribute(&rt, s)?.is_some() => Some(s),
                _ => None,
            };
            let query = ListQuery {
                schema: rt,
                filter: plan.filter.as_ref(),
                sort,
                start_index: 1,
                count: wanted,
                after: None,
                count_total: true,
                projection: &plan.projection,
            };
            let page = self
                .store
                .list(ctx, rt.name(), &query)
                .await
                .map_err(|e| store_error(e, rt.name()))?;
            total += page.total_results;
            let groups = self
                .groups_for(ctx, &rt, &page.records, &plan.projection)
                .await?;
            for r in page.records {
                let key = plan
                    .sort
                    .as_ref()
                    .map(|s| crate::store::query::sort_key(&rt, s, &r.resource));
                found.push((key, self.render(&rt, r, &plan.projection, groups.as_ref())));
            }
        }
        // One order across resource types: each type's candidates sorted together.
        if let Some(sort) = &probe.sort {
            found.sort_by(|(a, _), (b, _)| match (a, b) {
                (Some(a), Some(b)) => crate::store::query::order(a, b, sort.order),
                _ => std::cmp::Ordering::Equal,
            });
        }
        let resources: Vec<Value> = found
            .into_iter()
            .map(|(_, v)| v)
            .skip(probe.start_index - 1)
            .take(probe.count)
            .collect();
        let list = ListResponse::new(resources, total as u64, probe.start_index as u64);
        Ok(Response::json(200, &list))
    }

    /// PUT: replace (RFC 7644 §3.5.1).
    async fn replace(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        id: &str,
        req: &Request,
    ) -> Result<Response> {
        let doc = self.resource_body(rt, req)?;
        if !self.config.change_password && doc.contains_key("password") {
            return Err(password_unsupported());
        }
        let expect = Expect::from(req);
        let projection = self.query_projection(req)?;
        // Writes to this resource in this process run in turn rather than race.
        let _turn = self.writes.turn(rt.name(), id).await;
        for attempt in 0..=self.config.max_write_retries {
            if attempt > 0 {
                yield_now().await;
            }
            let current = self.load(ctx, rt, id, &Projection::all()).await?;
            if let Some(expect) = &expect {
                expect.check(current.version, rt.name())?;
            }
            let Value::Object(old) = &current.resource else {
                return Err(Error::internal("the stored resource is not a JSON object"));
            };
            let mut new = doc.clone();
            self.carry_over(rt, old, &mut new)?;
            self.check_references(ctx, rt, &new, Some(old)).await?;
            if same_except_meta(&new, old) {
                return self.respond(ctx, 200, rt, current, &projection).await;
            }
            let time = self.now();
            touch_meta(&mut new, &crate::store::timestamp(time));
            let unique = self.unique_values(rt, &new);
            let version = current.version + 1;
            let events = Change {
                rt,
                id: &current.id,
                version,
                time,
            }
            .updated(old, &new, true);
            let record = Record {
                id: current.id.clone(),
                version,
                resource: Value::Object(new),
            };
            match self
                .store
                .replace(ctx, rt.name(), record, current.version, &unique, &events)
                .await
            {
                Ok(stored) => {
                    return self.respond(ctx, 200, rt, stored, &projection).await;
                }
                Err(StoreError::PreconditionFailed)
                    if !matches!(expect, Some(Expect::Versions(_))) => {}
                Err(e) => return Err(store_error(e, rt.name())),
            }
        }
        Err(Error::conflict(format!(
            "{} {id} kept changing while it was being replaced; try again",
            rt.name()
        )))
    }

    /// On PUT: keeps what the client cannot set or could not have read (`id`,
    /// `meta.created`, immutable values, write-only values it left out) and refuses
    /// a change to an immutable value.
    fn carry_over(
        &self,
        rt: &ResourceSchema<'_>,
        old: &Map<String, Value>,
        new: &mut Map<String, Value>,
    ) -> Result<()> {
        for key in ["id", "meta"] {
            if let Some(v) = old.get(key) {
                new.insert(key.to_owned(), v.clone());
            }
        }
        // Read-only values are the server's: a PUT neither sets nor clears them
        // (RFC 7644 §3.5.1), down to read-only sub-attributes of a single complex value.
        fn keep_read_only(
            attrs: &[crate::schema::Attribute],
            old: &Map<String, Value>,
            new: &mut Map<String, Value>,
        ) {
            for a in attrs {
                if a.mutability() == Mutability::ReadOnly {
                    if let Some(v) = old.get(a.name()) {
                        new.insert(a.name().to_owned(), v.clone());
                    }
                } else if a.is_complex() && !a.is_multi_valued() {
                    if let (Some(Value::Object(o)), Some(Value::Object(n))) =
                        (old.get(a.name()), new.get_mut(a.name()))
                    {
                        for sub in a
                            .sub_attributes()
                            .iter()
                            .filter(|s| s.mutability() == Mutability::ReadOnly)
                        {
                            if let Some(v) = o.get(sub.name()) {
                                n.insert(sub.name().to_owned(), v.clone());
                            }
                        }
                    }
                }
            }
        }
        keep_read_only(&rt.core().attributes, old, new);
        for (ext, _) in rt.extensions() {
            if let (Some(Value::Object(o)), Some(Value::Object(n))) =
                (old.get(&ext.id), new.get_mut(&ext.id))
            {
                keep_read_only(&ext.attributes, o, n);
            }
        }
        let carry = |attrs: &[crate::schema::Attribute],
                     old: &Map<String, Value>,
                     new: &mut Map<String, Value>,
                     prefix: &str|
         -> Result<()> {
            for a in attrs {
                let (before, after) = (old.get(a.name()), new.get(a.name()));
                match a.mutability() {
                    Mutability::Immutable => match (before, after) {
                        (Some(b), Some(n)) if b != n => {
                            return Err(Error::mutability(format!(
                                "'{prefix}{}' is immutable and cannot be changed",
                                a.name()
                            )));
                        }
                        (Some(b), None) => {
                            new.insert(a.name().to_owned(), b.clone());
                        }
                        _ => {}
                    },
                    Mutability::WriteOnly => {
                        if let (Some(b), None) = (before, after) {
                            new.insert(a.name().to_owned(), b.clone());
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        carry(&rt.core().attributes, old, new, "")?;
        for (ext, _) in rt.extensions() {
            if let (Some(Value::Object(o)), Some(Value::Object(n))) =
                (old.get(&ext.id), new.get_mut(&ext.id))
            {
                carry(&ext.attributes, o, n, &format!("{}:", ext.id))?;
            }
        }
        Ok(())
    }

    /// PATCH (RFC 7644 §3.5.2).
    async fn patch(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        id: &str,
        req: &Request,
    ) -> Result<Response> {
        let body = self.body_json(req, self.config.max_body_bytes)?;
        let op: PatchOp = serde_json::from_value(body)
            .map_err(|e| Error::invalid_syntax(format!("the body is not a PatchOp: {e}")))?;
        let expect = Expect::from(req);
        let projection = self.query_projection(req)?;
        let patched = self.patch_record(ctx, rt, id, &op, expect.as_ref()).await?;
        let no_content = matches!(
            (self.config.patch_response, &patched),
            (PatchResponse::NoContent, _)
                | (
                    PatchResponse::NoContentForMemberChanges,
                    Patched::Members(_)
                )
        );
        let record = match patched {
            Patched::Members(version) | Patched::Version(version) if no_content => {
                return Ok(Response::empty(204).with_header("ETag", etag(version)));
            }
            Patched::Members(_) | Patched::Version(_) => {
                self.load(ctx, rt, id, &projection).await?
            }
            Patched::Record(record) => record,
        };
        if no_content {
            return Ok(Response::empty(204).with_header("ETag", etag(record.version)));
        }
        self.respond(ctx, 200, rt, record, &projection).await
    }

    /// Applies a PatchOp: through the store's member delta when it only touches
    /// members and the store can, else read, patch, conditionally replace, and on
    /// a race (without `If-Match`) again on the fresh version.
    async fn patch_record(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        id: &str,
        op: &PatchOp,
        expect: Option<&Expect>,
    ) -> Result<Patched> {
        // The version a member delta must find: none to check, or the one If-Match names
        // (several tags take the general path, which compares each).
        let fast_version = match expect {
            None | Some(Expect::Any) => Some(None),
            Some(e) => e.version().map(Some),
        };
        let delta = fast_version.and_then(|v| {
            MemberDelta::from_patch(rt, op, &self.config.patch, self.now()).map(|mut d| {
                d.max_members = self.config.max_members;
                d.member_types = self.member_types(rt, &d.attribute);
                (d, v)
            })
        });
        if let Some((delta, expected_version)) = delta {
            self.check_added_members(ctx, rt, &delta.attribute, &delta.changes)
                .await?;
            match self
                .store
                .update_members(ctx, rt.name(), id, &delta, expected_version)
                .await
            {
                Ok(Some(version)) => return Ok(Patched::Members(version)),
                Ok(None) => {}
                Err(e) => return Err(store_error(e, rt.name())),
            }
        }
        // An attribute the store keeps apart (a group's members) that this PATCH
        // leaves alone is neither read nor written back.
        let apart = self
            .store
            .kept_apart(rt.name())
            .filter(|attr| !op_touches(rt, op, attr))
            .map(str::to_owned);
        let read = match &apart {
            Some(attr) => Projection {
                attributes: Vec::new(),
                excluded: vec![AttrPath::new(attr)],
            },
            None => Projection::all(),
        };
        let members_attr = rt
            .core()
            .attribute("members")
            .filter(|a| a.is_multi_valued())
            .map(|a| a.name());
        let touches_members = members_attr.is_some_and(|m| op_touches(rt, op, m));
        // Writes to this resource in this process run in turn rather than race.
        let _turn = self.writes.turn(rt.name(), id).await;
        for attempt in 0..=self.config.max_write_retries {
            if attempt > 0 {
                yield_now().await;
            }
            let mut current = self.load(ctx, rt, id, &read).await?;
            if let Some(expect) = expect {
                expect.check(current.version, rt.name())?;
            }
            // The resource as it was, for the events: without its members unless
            // the PATCH touches them.
            let before = match &current.resource {
                Value::Object(doc) => doc
                    .iter()
                    .filter(|(k, _)| touches_members || members_attr.is_none_or(|m| !eq(k, m)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                _ => Map::new(),
            };
            let password_before = current.resource.get("password").cloned();
            let outcome = patch::apply(rt, &mut current.resource, op, &self.config.patch)?;
            if !self.config.change_password
                && current.resource.get("password") != password_before.as_ref()
            {
                return Err(password_unsupported());
            }
            if !outcome.changed {
                return Ok(match apart {
                    // Read in part: the caller reads what it returns.
                    Some(_) => Patched::Version(current.version),
                    None => Patched::Record(current),
                });
            }
            let Value::Object(doc) = &mut current.resource else {
                return Err(Error::internal("the stored resource is not a JSON object"));
            };
            self.check_required(rt, doc)?;
            self.check_limits(rt, doc)?;
            self.check_patched_references(ctx, rt, op, doc).await?;
            let time = self.now();
            touch_meta(doc, &crate::store::timestamp(time));
            let unique = self.unique_values(rt, doc);
            let expected = current.version;
            current.version += 1;
            let change = Change {
                rt,
                id: &current.id,
                version: current.version,
                time,
            };
            let events = change.updated(&before, doc, touches_members);
            let written = match apart {
                Some(_) => self
                    .store
                    .replace_except(ctx, rt.name(), current, expected, &unique, &events)
                    .await
                    .map(|stored| Patched::Version(stored.version)),
                None => self
                    .store
                    .replace(ctx, rt.name(), current, expected, &unique, &events)
                    .await
                    .map(Patched::Record),
            };
            match written {
                Ok(patched) => return Ok(patched),
                Err(StoreError::PreconditionFailed)
                    if !matches!(expect, Some(Expect::Versions(_))) => {}
                Err(e) => return Err(store_error(e, rt.name())),
            }
        }
        Err(Error::conflict(format!(
            "{} {id} kept changing while the PATCH was applied; try again",
            rt.name()
        )))
    }

    /// DELETE (RFC 7644 §3.6); a deleted user or group also leaves the groups that
    /// listed it (RFC 7643 §4.2).
    async fn delete(
        &self,
        ctx: &S::Context,
        rt: &ResourceSchema<'_>,
        id: &str,
        req: &Request,
    ) -> Result<Response> {
        let expect = Expect::from(req);
        // Read without what the store keeps apart (a group's members): the version
        // to delete, checked against If-Match and named by the Deleted event.
        let read = match self.store.kept_apart(rt.name()) {
            Some(attr) => Projection {
                attributes: Vec::new(),
                excluded: vec![AttrPath::new(attr)],
            },
            None => Projection::all(),
        };
        let mut deleted = false;
        // Writes to this resource in this process run in turn rather than race; the
        // turn ends with the delete, before the groups are updated.
        let turn = self.writes.turn(rt.name(), id).await;
        for attempt in 0..=self.config.max_write_retries {
            if attempt > 0 {
                yield_now().await;
            }
            let current = self.load(ctx, rt, id, &read).await?;
            if let Some(expect) = &expect {
                expect.check(current.version, rt.name())?;
            }
            let change = Change {
                rt,
                id: &current.id,
                version: current.version,
                time: self.now(),
            };
            match self
                .store
                .delete(ctx, rt.name(), id, Some(current.version), &change.deleted())
                .await
            {
                Ok(()) => {
                    deleted = true;
                    break;
                }
                Err(StoreError::PreconditionFailed)
                    if !matches!(expect, Some(Expect::Versions(_))) => {}
                Err(e) => return Err(store_error(e, rt.name())),
            }
        }
        drop(turn);
        if !deleted {
            return Err(Error::conflict(format!(
                "{} {id} kept changing while it was being deleted; try again",
                rt.name()
            )));
        }
        let mut done = Response::empty(204);
        if self.has_derived_groups(rt) || self.group_members_reference(rt) {
            if let Err(e) = self.leave_groups(ctx, id).await {
                // The resource is gone, and the client is told so (a retry would only
                // find it missing); what failed is kept for the host's logs.
                let why = Response::error(&e)
                    .cause
                    .unwrap_or_else(|| e.detail().to_owned());
                done.cause = Some(format!(
                    "{} {id} was deleted, but taking it out of its groups failed: {why}",
                    rt.name()
                ));
            }
        }
        Ok(done)
    }

    async fn leave_groups(&self, ctx: &S::Context, member: &str) -> Result<()> {
        let Some(groups) = self.registry.resource_type("Group") else {
            return Ok(());
        };
        let memberships = self.groups_of(ctx, &[member]).await?;
        let op = PatchOp::new(vec![crate::message::PatchOperation::remove(&format!(
            "members[value eq {}]",
            CompValue::from(member)
        ))]);
        // The member is gone already; a group that cannot be updated now keeps a
        // dangling member rather than failing the delete the client asked for, and
        // the others are still updated.
        let mut kept = Vec::new();
        for group in memberships.get(member).into_iter().flatten() {
            if let Some(gid) = group.get("value").and_then(Value::as_str) {
                match self.patch_record(ctx, &groups, gid, &op, None).await {
                    Ok(_) => {}
                    // Gone meanwhile, or the membership is gone already: nothing kept.
                    Err(e) if e.status() == 404 || e.scim_type() == Some(ScimType::NoTarget) => {}
                    Err(e) => {
                        let why = Response::error(&e)
                            .cause
                            .unwrap_or_else(|| e.detail().to_owned());
                        kept.push(format!("{gid} ({why})"));
                    }
                }
            }
        }
        if kept.is_empty() {
            return Ok(());
        }
        Err(Error::internal(format!(
            "{} group(s) still list it: {}",
            kept.len(),
            kept.join(", ")
        )))
    }
}

fn password_unsupported() -> Error {
    Error::mutability(
        "changing passwords is not supported here (changePassword.supported is false)",
    )
}

/// Whether the service has the store keep the values of `a`, an attribute of a
/// resource type's core schema, unique: single-valued, `uniqueness` server or global
/// (RFC 7643 §2.4), each value that is a string (by `caseExact`). The common `id`
/// is the store's own key.
fn kept_unique(a: &Attribute) -> bool {
    a.uniqueness() != Uniqueness::None && !a.is_multi_valued()
}

/// Whether no attribute of `rt`, in its core schema or an extension, is a list of
/// references (a group's `members`), whose size only
/// [`ServiceConfig::max_members`] bounds.
fn holds_no_reference_list(rt: &ResourceSchema<'_>) -> bool {
    !rt.core().attributes.iter().any(limits::is_reference_list)
        && rt
            .extensions()
            .all(|(ext, _)| !ext.attributes.iter().any(limits::is_reference_list))
}

/// Whether a PatchOp may read or write the core attribute `attr`: an operation
/// whose path names it (or does not parse), or one without a path whose value has
/// it (also URN-qualified, or inside the core schema's URN object).
fn op_touches(rt: &ResourceSchema<'_>, op: &PatchOp, attr: &str) -> bool {
    let core = &rt.core().id;
    // A key is a path too (`members.display`, `urn:…:Group:members`), as the
    // PATCH engine reads it; a URN alone is the core schema's object.
    let names = |key: &str| {
        let (urn, rest) = match key.rsplit_once(':') {
            Some((urn, rest)) => (Some(urn), rest),
            None => (None, key),
        };
        let name = rest.split(['.', '[']).next().unwrap_or(rest);
        eq(name, attr) && urn.is_none_or(|u| eq(u, core))
    };
    op.operations.iter().any(|o| match o.path.as_deref() {
        Some(path) => match crate::path::Path::parse(path) {
            Ok(p) => eq(p.attr().name(), attr) && p.attr().schema().is_none_or(|s| eq(s, core)),
            Err(_) => true,
        },
        None => match &o.value {
            Some(Value::Object(map)) => map.iter().any(|(k, v)| {
                names(k)
                    || (eq(k, core)
                        && v.as_object()
                            .is_none_or(|inner| inner.keys().any(|k| names(k))))
            }),
            _ => true,
        },
    })
}

/// Whether a filter names the attribute `name` of the core schema anywhere.
fn filter_mentions(f: &Filter, name: &str, core: &str) -> bool {
    let names = |p: &AttrPath| {
        p.name().eq_ignore_ascii_case(name) && p.schema().is_none_or(|s| eq(s, core))
    };
    match f {
        Filter::Compare(p, _, _) | Filter::Present(p) | Filter::ValuePath(p, _) => names(p),
        Filter::And(parts) | Filter::Or(parts) => {
            parts.iter().any(|p| filter_mentions(p, name, core))
        }
        Filter::Not(inner) => filter_mentions(inner, name, core),
    }
}

/// Lets the executor run other tasks once before a write that lost a race tries
/// again: the writer that won gets on, and the one retrying does not spin on a
/// worker thread. Works on any executor (it only wakes itself).
fn yield_now() -> impl std::future::Future<Output = ()> {
    struct YieldNow(bool);
    impl std::future::Future for YieldNow {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    YieldNow(false)
}

/// What a PATCH left: the record, or only its version when the store wrote it
/// without handing it back: a member delta applied without loading the group, or a
/// write that left the group's members where they were.
enum Patched {
    Record(Record),
    Members(u64),
    Version(u64),
}

/// Whether two resources differ only in `meta`, for "did anything change".
fn same_except_meta(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let not_meta = |(k, _): &(&String, &Value)| !eq(k, "meta");
    a.iter().filter(not_meta).count() == b.iter().filter(not_meta).count()
        && a.iter().filter(not_meta).all(|(k, v)| b.get(k) == Some(v))
}

fn touch_meta(doc: &mut Map<String, Value>, now: &str) {
    let meta = doc
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert("lastModified".to_owned(), Value::String(now.to_owned()));
        meta.remove("version");
        meta.remove("location");
    }
}
