//! Webhooks: every provisioning event, delivered to `--webhook URL` as signed JSON.
//!
//! - **What is sent.** One POST per event. The body has the claims of a Security
//!   Event Token as RFC 9967 (SCIM Profile for SETs) defines them: `jti` (the event
//!   id), `iat`, `iss` (the SCIM base URL), `aud` (the webhook URL), `sub_id`
//!   (`{"format": "scim", "uri": "/Users/<id>"}`), `txn`, and `events` with one event
//!   URI: `prov:create:notice`, `prov:patch:notice`, `prov:activate`,
//!   `prov:deactivate` or `prov:delete`. Notices carry `attributes` (what changed)
//!   and `version` (the new ETag). Where RFC 9967 has no room, the claim `scimkit`
//!   holds scimkit's own event: its type, tenant, sequence and the member ids that
//!   joined or left a group.
//! - **Where it differs from RFC 9967.** The SET is sent as plain JSON
//!   (`application/json`), not as a JWT, and is authenticated by the Standard
//!   Webhooks signature rather than by JWS; a PUT is reported as `prov:patch:notice`
//!   like a PATCH (both are notices of what changed); membership changes are
//!   `prov:patch:notice` with `attributes: ["members"]`, as RFC 9967 does, with the
//!   ids in `scimkit.members`.
//! - **How it is signed.** The Standard Webhooks convention: headers `webhook-id`
//!   (the event id, the same on every retry), `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//!   `<id>.<timestamp>.<body>` under the secret, given as `whsec_<base64>`).
//! - **How it is delivered.** At least once, in commit order. An event is
//!   acknowledged only after a 2xx answer (acknowledgements are made at most four
//!   times a second under load, and at once when idle), so a crash re-delivers it
//!   after the restart: receivers de-duplicate by `webhook-id`. Failures are retried with
//!   exponential backoff (honouring `Retry-After`); after the last attempt the event
//!   goes to the dead letters (`scimkit-server events dead-letters`) and delivery
//!   goes on. One instance delivers at a time (a lease in the database, timed by
//!   the database's clock); the others take over within the lease's time if it
//!   stops. Only `http://` receivers are built in: an `https` one goes behind a
//!   local TLS-terminating proxy.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use scimkit::Url;
use scimkit::events::{Event, EventKind, EventLog, StoredEvent};
use scimkit_sql::store::SqlStore;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::metrics::Metrics;

/// A name for this process's hold on the delivery lease: unique among instances.
pub fn owner_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut random = [0u8; 8];
    let _ = getrandom::getrandom(&mut random);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        u64::from_le_bytes(random)
    )
}

/// The consumer name the webhook's cursor is kept under.
pub const CONSUMER: &str = "webhook";

/// How long a deliverer's lease lasts unless renewed.
const LEASE: Duration = Duration::from_secs(30);

/// Events read at a time.
const BATCH: usize = 100;

/// How often, at most, delivered events are acknowledged while more keep coming.
const ACK_EVERY: Duration = Duration::from_millis(250);

/// A Standard Webhooks signing secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>` (the prefix is optional); the key is 24 to 512 bytes.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = BASE64
            .decode(b64)
            .map_err(|e| format!("the webhook secret is not whsec_ and base64: {e}"))?;
        if !(24..=512).contains(&key.len()) {
            return Err(format!(
                "the webhook secret holds {} bytes; Standard Webhooks asks for 24 to 512",
                key.len()
            ));
        }
        Ok(Secret(key))
    }

    /// A new random secret, as `whsec_<base64 of 32 bytes>`.
    pub fn generate() -> Result<String, String> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| format!("no randomness: {e}"))?;
        Ok(format!("whsec_{}", BASE64.encode(key)))
    }

    /// The `webhook-signature` header's value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC takes keys of any length.
            Err(_) => return String::new(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The webhook's settings.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where events are posted: `http://` only (an `https` receiver goes behind a
    /// local TLS-terminating proxy).
    pub url: Url,
    /// The signing secret.
    pub secret: Secret,
    /// The issuer (`iss`): the SCIM base URL.
    pub issuer: String,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// Attempts per event before it becomes a dead letter.
    pub max_attempts: u32,
    /// The wait before the first retry; each next one doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Webhook {
    /// Checks the URL: `http://host[:port]/path`.
    pub fn check_url(url: &Url) -> Result<(), String> {
        match url.scheme() {
            "http" if url.host_str().is_some() => Ok(()),
            "https" => Err(format!(
                "--webhook {url}: https is not built in; point it at a local TLS-terminating \
                 proxy (http://127.0.0.1:…) that forwards to the receiver"
            )),
            _ => Err(format!(
                "--webhook {url}: expected an http:// URL with a host"
            )),
        }
    }
}

/// The JSON body for one event: a SET's claims (RFC 9967) plus scimkit's own.
pub fn body(stored: &StoredEvent<String>, issuer: &str, audience: &str) -> Value {
    let e: &Event = &stored.event;
    let version = format!("W/\"{}\"", e.version);
    let (uri, payload) = match &e.kind {
        EventKind::Created { attributes } => (
            "urn:ietf:params:scim:event:prov:create:notice",
            json!({"attributes": attributes, "version": version}),
        ),
        EventKind::Updated { attributes } => (
            "urn:ietf:params:scim:event:prov:patch:notice",
            json!({"attributes": attributes, "version": version}),
        ),
        EventKind::MembersAdded { .. } | EventKind::MembersRemoved { .. } => (
            "urn:ietf:params:scim:event:prov:patch:notice",
            json!({"attributes": ["members"], "version": version}),
        ),
        EventKind::Deactivated => ("urn:ietf:params:scim:event:prov:deactivate", json!({})),
        EventKind::Reactivated => ("urn:ietf:params:scim:event:prov:activate", json!({})),
        EventKind::Deleted => ("urn:ietf:params:scim:event:prov:delete", json!({})),
        // A kind added later: described by the `scimkit` claim alone.
        _ => (
            "urn:ietf:params:scim:event:prov:patch:notice",
            json!({"version": version}),
        ),
    };
    let endpoint = match e.resource_type.as_str() {
        "User" => "Users".to_owned(),
        "Group" => "Groups".to_owned(),
        other => format!("{other}s"),
    };
    let mut own = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut own {
        o.insert("sequence".to_owned(), json!(stored.sequence));
        o.insert("tenant".to_owned(), json!(stored.tenant));
    }
    json!({
        "jti": e.id,
        "iat": Utc::now().timestamp(),
        "iss": issuer,
        "aud": [audience],
        "txn": e.id,
        "sub_id": {"format": "scim", "uri": format!("/{endpoint}/{}", e.resource_id)},
        "events": {uri: payload},
        "scimkit": own,
    })
}

/// Why an attempt failed, and how long the receiver asked us to wait.
struct Failure {
    reason: String,
    retry_after: Option<Duration>,
}

/// One keep-alive connection to the receiver, made again when it breaks.
struct Client {
    url: Url,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        // An IPv6 literal without its brackets, as a socket address wants it.
        let host = match self.url.host() {
            Some(scimkit::url::Host::Ipv6(a)) => a.to_string(),
            _ => self.url.host_str().unwrap_or_default().to_owned(),
        };
        let port = self.url.port_or_known_default().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// One attempt, connecting if need be; the whole of it (connection, request,
    /// answer) within the webhook's timeout.
    async fn post(&mut self, hook: &Webhook, id: &str, body: Bytes) -> Result<(), Failure> {
        match tokio::time::timeout(hook.timeout, self.attempt(hook, id, body)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure {
                reason: format!("no answer within {} s", hook.timeout.as_secs_f64()),
                retry_after: None,
            }),
        }
    }

    async fn attempt(&mut self, hook: &Webhook, id: &str, body: Bytes) -> Result<(), Failure> {
        let fail = |reason: String| Failure {
            reason,
            retry_after: None,
        };
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await.map_err(fail)?,
        };
        let timestamp = Utc::now().timestamp();
        let signature = hook.secret.sign(id, timestamp, &body);
        let path = match hook.url.query() {
            Some(q) => format!("{}?{q}", hook.url.path()),
            None => hook.url.path().to_owned(),
        };
        let authority = match hook.url.port() {
            Some(p) => format!("{}:{p}", hook.url.host_str().unwrap_or_default()),
            None => hook.url.host_str().unwrap_or_default().to_owned(),
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "scimkit-server")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(body))
            .map_err(|e| fail(format!("cannot build the request: {e}")))?;
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // Read the answer to its end, so the connection can carry the next one.
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>((status, retry_after))
        }
        .await;
        match answer {
            Err(e) => Err(fail(format!("HTTP failure: {e}"))),
            Ok((status, retry_after)) => {
                self.sender = Some(sender);
                if status.is_success() {
                    Ok(())
                } else {
                    Err(Failure {
                        reason: format!("the receiver answered {status}"),
                        retry_after,
                    })
                }
            }
        }
    }
}

/// Delivers events until the task is aborted: takes the lease, reads a batch,
/// posts each event until it is answered 2xx or given up, acknowledges it, and
/// waits for more.
pub async fn run(store: SqlStore<String>, hook: Webhook, owner: String, metrics: Arc<Metrics>) {
    let mut client = Client {
        url: hook.url.clone(),
        sender: None,
    };
    let mut waiter = loop {
        match store.event_waiter().await {
            Ok(w) => break w,
            Err(e) => {
                tracing::warn!(cause = %e, "webhook: cannot listen for events; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let audience = hook.url.to_string();
    // Renewed once a quarter of it has passed, before each attempt, and each
    // attempt takes at most the timeout: at most half of it passes unrenewed.
    let lease = LEASE.max(hook.timeout.saturating_mul(4));
    let mut holder = Holder {
        store: &store,
        owner: &owner,
        lease,
        renewed: None,
    };
    // The last event this instance delivered (or gave up on), and the last it
    // acknowledged.
    let (mut delivered, mut acknowledged) = (0u64, 0u64);
    let mut last_ack = std::time::Instant::now();
    loop {
        match holder.hold().await {
            Ok(true) => {}
            Ok(false) => {
                // Another instance delivers; look again before its lease could lapse.
                tokio::time::sleep(lease / 4).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(cause = %e, "webhook: cannot take the delivery lease");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        }
        let batch = match store.read_events_after(CONSUMER, delivered, BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(cause = %e, "webhook: cannot read events");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            // Idle: everything delivered is acknowledged before waiting.
            if acknowledged < delivered {
                until_done(delivered, || store.acknowledge_events(CONSUMER, delivered)).await;
                acknowledged = delivered;
                last_ack = std::time::Instant::now();
            }
            if let Ok(n) = store.event_backlog(CONSUMER).await {
                metrics.set_events_pending(n);
            }
            waiter.wait(lease / 4).await;
            continue;
        }
        for stored in &batch {
            let held = matches!(holder.hold().await, Ok(true));
            if !held || !deliver(&mut holder, &hook, &mut client, &audience, stored, &metrics).await
            {
                // The lease was lost: another instance goes on from the cursor.
                break;
            }
            delivered = delivered.max(stored.sequence);
        }
        // Acknowledged a few times a second under load, not once per event: each
        // acknowledgement is a durable commit, and a crash delivers at most what
        // was delivered since the last one again.
        if acknowledged < delivered && last_ack.elapsed() >= ACK_EVERY {
            until_done(delivered, || store.acknowledge_events(CONSUMER, delivered)).await;
            acknowledged = delivered;
            last_ack = std::time::Instant::now();
            if let Ok(n) = store.event_backlog(CONSUMER).await {
                metrics.set_events_pending(n);
            }
        }
    }
}

/// This instance's hold on the delivery lease.
struct Holder<'a> {
    store: &'a SqlStore<String>,
    owner: &'a str,
    lease: Duration,
    /// When the lease was last taken or renewed.
    renewed: Option<std::time::Instant>,
}

impl Holder<'_> {
    /// Whether this instance holds the lease, renewing it once a quarter of it
    /// has passed.
    async fn hold(&mut self) -> Result<bool, scimkit::store::StoreError> {
        if self.renewed.is_some_and(|at| at.elapsed() < self.lease / 4) {
            return Ok(true);
        }
        self.renewed = None;
        // Counted from before the round trip: the lease may have begun earlier.
        let asked = std::time::Instant::now();
        let held = self
            .store
            .lease_consumer(CONSUMER, self.owner, self.lease)
            .await?;
        if held {
            self.renewed = Some(asked);
        }
        Ok(held)
    }
}

/// Delivers one event, retrying, and after the last attempt records it as a dead
/// letter; returns false when this instance lost the lease.
async fn deliver(
    holder: &mut Holder<'_>,
    hook: &Webhook,
    client: &mut Client,
    audience: &str,
    stored: &StoredEvent<String>,
    metrics: &Metrics,
) -> bool {
    let store = holder.store;
    let body = Bytes::from(body(stored, &hook.issuer, audience).to_string());
    let id = &stored.event.id;
    let mut backoff = hook.first_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if !matches!(holder.hold().await, Ok(true)) {
            return false;
        }
        match client.post(hook, id, body.clone()).await {
            Ok(()) => {
                let lag = (Utc::now() - stored.event.time).as_seconds_f64().max(0.0);
                metrics.webhook_delivered(lag);
                return true;
            }
            Err(failure) => {
                metrics.webhook_failed_attempt();
                if attempt >= hook.max_attempts {
                    tracing::error!(
                        event = %id, sequence = stored.sequence, attempts = attempt,
                        cause = %failure.reason,
                        "webhook: giving up on an event; it is kept as a dead letter"
                    );
                    metrics.webhook_dead_letter();
                    until_done(stored.sequence, || {
                        store.dead_letter(CONSUMER, stored, attempt, &failure.reason)
                    })
                    .await;
                    return true;
                }
                let wait = failure.retry_after.unwrap_or(backoff).min(hook.max_backoff);
                tracing::warn!(
                    event = %id, attempt, cause = %failure.reason,
                    retry_in_s = wait.as_secs_f64(), "webhook: delivery failed; retrying"
                );
                // Sleep in slices, renewing the lease, so that no other instance
                // starts delivering meanwhile.
                let mut left = wait;
                while !left.is_zero() {
                    let slice = left.min(holder.lease / 4);
                    tokio::time::sleep(slice).await;
                    left -= slice;
                    if !matches!(holder.hold().await, Ok(true)) {
                        return false;
                    }
                }
                backoff = backoff.saturating_mul(2).min(hook.max_backoff);
            }
        }
    }
}

/// Runs an acknowledgement until the database takes it: an event answered 2xx is
/// never posted again by this instance while it can reach the database.
async fn until_done<Fut>(sequence: u64, f: impl Fn() -> Fut)
where
    Fut: std::future::Future<Output = Result<(), scimkit::store::StoreError>>,
{
    let mut wait = Duration::from_millis(100);
    while let Err(e) = f().await {
        tracing::warn!(sequence, cause = %e, "webhook: cannot acknowledge an event; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// Prunes events every consumer acknowledged (and, while no consumer exists, any)
/// once they are older than `retention`, every minute.
pub async fn prune(store: SqlStore<String>, retention: Duration) {
    loop {
        // A retention too long to subtract keeps everything.
        let before = chrono::TimeDelta::from_std(retention)
            .ok()
            .and_then(|kept| Utc::now().checked_sub_signed(kept));
        let pruned = match before {
            Some(before) => store.prune_events(before).await,
            None => Ok(0),
        };
        match pruned {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "events pruned"),
            Err(e) => tracing::warn!(cause = %e, "cannot prune events"),
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_test_vector() {
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("secret");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            secret.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn secrets_are_checked() {
        assert!(Secret::parse("whsec_short").is_err());
        assert!(Secret::parse("not base64 at all!").is_err());
        let fresh = Secret::generate().expect("random");
        assert!(fresh.starts_with("whsec_"));
        assert!(Secret::parse(&fresh).is_ok());
    }

    #[test]
    fn only_http_urls() {
        let ok = Url::parse("http://127.0.0.1:9000/hook").expect("url");
        assert!(Webhook::check_url(&ok).is_ok());
        let tls = Url::parse("https://example.com/hook").expect("url");
        assert!(Webhook::check_url(&tls).is_err());
    }

    #[test]
    fn bodies_follow_rfc_9967() {
        let time = "2026-05-13T04:42:34.120Z".parse().expect("time");
        let stored = StoredEvent {
            sequence: 7,
            tenant: "acme".to_owned(),
            event: Event::new(
                EventKind::MembersAdded {
                    members: vec!["u1".to_owned()],
                },
                "Group",
                "g1",
                3,
                time,
            ),
        };
        let b = body(&stored, "https://scim.example.com/scim/v2", "http://hook");
        assert_eq!(b["sub_id"], json!({"format": "scim", "uri": "/Groups/g1"}));
        assert_eq!(
            b["events"]["urn:ietf:params:scim:event:prov:patch:notice"],
            json!({"attributes": ["members"], "version": "W/\"3\""})
        );
        assert_eq!(b["jti"], json!(stored.event.id));
        assert_eq!(b["scimkit"]["type"], "membersAdded");
        assert_eq!(b["scimkit"]["members"], json!(["u1"]));
        assert_eq!(b["scimkit"]["tenant"], "acme");
        assert_eq!(b["scimkit"]["sequence"], 7);
        let deactivated = StoredEvent {
            event: Event::new(EventKind::Deactivated, "User", "u1", 4, time),
            ..stored
        };
        let b = body(&deactivated, "iss", "aud");
        assert_eq!(
            b["events"]["urn:ietf:params:scim:event:prov:deactivate"],
            json!({})
        );
        assert_eq!(b["sub_id"]["uri"], "/Users/u1");
    }
}
