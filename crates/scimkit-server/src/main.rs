//! `scimkit-server`: a ready-to-run SCIM 2.0 server (RFC 7643, RFC 7644) on SQLite
//! (embedded, the default) or PostgreSQL (any number of instances on one database),
//! with API keys per tenant, health and readiness probes, Prometheus metrics and
//! structured logs. `scimkit-server --help` lists every option.
#![forbid(unsafe_code)]

mod keys;
mod metrics;
mod webhook;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use clap::{Args, Parser, Subcommand, ValueEnum};
use scimkit::service::{PatchResponse, Response, Service, ServiceConfig};
use scimkit::{Error, Registry, Url};
use scimkit_axum::{ApiKeys, RouterOptions, ServeOptions};
use scimkit_sql::store::SqlStore;

use crate::keys::SqlKeys;
use crate::metrics::Metrics;

/// The tenant of the key the first start creates.
const DEFAULT_TENANT: &str = "default";

/// A SCIM 2.0 server for identity providers (Okta, Microsoft Entra ID, OneLogin …):
/// Users and Groups in SQLite or PostgreSQL, behind API keys per tenant.
///
/// Without a subcommand it serves. On its first start, when the database holds no
/// API key, it creates one for the tenant `default` and prints it once; keep it, it is
/// stored only as a hash. `keys create` makes more (one per identity provider and
/// tenant), `keys revoke` ends one at once on every instance.
#[derive(Debug, Parser)]
#[command(name = "scimkit-server", version)]
struct Cli {
    /// The database: a SQLite file (created if missing), `:memory:` for one that
    /// keeps nothing, or a `postgres://user@host/db` URL (any number of instances may
    /// share one PostgreSQL database).
    #[arg(long, env = "SCIM_DB", default_value = "scim.db", global = true)]
    db: String,

    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the SCIM API (what happens without a subcommand).
    Serve(ServeArgs),
    /// Manage API keys: `create`, `list`, `revoke`.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Provisioning events: a webhook secret, consumers, dead letters.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Refresh the query planner's statistics on the store's tables: after a bulk
    /// import, so that look-ups use their indexes at once (PostgreSQL's autovacuum
    /// does this by itself, when it is on; SQLite never does).
    Analyze,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print a new webhook signing secret (`whsec_…`) for `--webhook-secret`.
    Secret,
    /// List the events the webhook gave up on, one JSON object per line.
    DeadLetters {
        /// The most to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// List the consumers of the event log and what each acknowledged.
    Consumers,
    /// Forget a consumer that is gone for good (its cursor and dead letters): the
    /// events it never acknowledged no longer hold back pruning.
    Forget {
        /// The consumer's name (`webhook` for the server's webhook).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant. The key alone goes to stdout (shown this once; only
    /// its hash is stored), its id and tenant to stderr.
    Create {
        /// The tenant whose data the key opens.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        /// What to call the key, e.g. the identity provider that will use it.
        #[arg(long, default_value = "api")]
        label: String,
    },
    /// List the keys: id, tenant, label, created, last used, revoked.
    List,
    /// Revoke a key by id: every instance refuses it from its next request on.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PatchAnswer {
    /// 200 with the resource.
    Resource,
    /// 204 No Content.
    NoContent,
    /// 204 for membership changes (as Okta's and Entra ID's examples do), else 200.
    MembersNoContent,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and warnings.
    Warn,
    /// One line per request, and start and stop.
    Info,
    /// More detail.
    Debug,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// The socket address to listen on (port 0 picks a free one).
    #[arg(long, env = "SCIM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Where the SCIM API is mounted (`/api/scim/v2` as on Cube Cloud also works).
    #[arg(long, env = "SCIM_BASE_PATH", default_value = "/scim/v2")]
    base_path: String,
    /// The public URL of the base, for `meta.location` and `Location` [default:
    /// http://LISTEN/BASE-PATH].
    #[arg(long, env = "SCIM_BASE_URL")]
    base_url: Option<String>,
    /// What a successful PATCH answers.
    #[arg(
        long,
        env = "SCIM_PATCH_RESPONSE",
        value_enum,
        default_value = "members-no-content"
    )]
    patch_response: PatchAnswer,
    /// Accept group members that name no existing user or group (for providers that
    /// push memberships before users); by default such a write is 400.
    #[arg(long, env = "SCIM_ALLOW_UNKNOWN_MEMBERS")]
    allow_unknown_members: bool,
    /// Seconds a connection may take to send a request's headers; also closes idle
    /// keep-alive connections.
    #[arg(long, env = "SCIM_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a request may take from its headers to its answer.
    #[arg(long, env = "SCIM_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
    /// The most connections open at once; more wait to be accepted.
    #[arg(long, env = "SCIM_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a shutdown (Ctrl-C, SIGTERM) waits for in-flight requests.
    #[arg(long, env = "SCIM_SHUTDOWN_GRACE", default_value_t = 10)]
    shutdown_grace: u64,
    /// Deliver every provisioning event to this http:// URL as signed JSON
    /// (Standard Webhooks; the body follows RFC 9967's Security Event Tokens).
    #[arg(long, env = "SCIM_WEBHOOK")]
    webhook: Option<String>,
    /// The webhook signing secret, `whsec_<base64>` (`events secret` makes one).
    #[arg(long, env = "SCIM_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Seconds one webhook delivery attempt may take.
    #[arg(long, env = "SCIM_WEBHOOK_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    webhook_timeout: u64,
    /// Attempts per event before it becomes a dead letter.
    #[arg(long, env = "SCIM_WEBHOOK_MAX_ATTEMPTS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..))]
    webhook_max_attempts: u32,
    /// Seconds before the first retry; each next wait doubles.
    #[arg(long, env = "SCIM_WEBHOOK_BACKOFF", default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    webhook_backoff: u64,
    /// The longest wait between two attempts, in seconds.
    #[arg(long, env = "SCIM_WEBHOOK_MAX_BACKOFF", default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    webhook_max_backoff: u64,
    /// Seconds events are kept once every consumer has acknowledged them (or, with
    /// no consumer, at all).
    #[arg(long, env = "SCIM_EVENT_RETENTION", default_value_t = 7 * 24 * 3600)]
    event_retention: u64,
    /// Log format.
    #[arg(long, env = "SCIM_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level.
    #[arg(long, env = "SCIM_LOG_LEVEL", value_enum, default_value = "info")]
    log_level: LogLevel,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Keys(command)) => runtime.block_on(keys::run(&cli.db, command)),
        Some(Command::Events(command)) => runtime.block_on(events(&cli.db, command)),
        Some(Command::Analyze) => runtime.block_on(analyze(&cli.db)),
        Some(Command::Serve(args)) => runtime.block_on(serve(&cli.db, args)),
        None => runtime.block_on(serve(&cli.db, cli.serve)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn init_logs(args: &ServeArgs) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match args.log_level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    // The server's own events at the chosen level; its libraries' (sqlx logs every
    // statement at info) only when they warn.
    let filter = Targets::new()
        .with_default(LevelFilter::WARN.min(level))
        .with_target("scimkit", level)
        .with_target("scimkit_axum", level)
        .with_target("scimkit_server", level);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match args.log_format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry
            .with(fmt.json().flatten_event(true).with_span_list(false))
            .try_init(),
    };
}

/// `/scim/v2/` and `scim/v2` become `/scim/v2`; `/` becomes the empty root.
fn normalise_base_path(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

struct Probe {
    store: SqlStore<String>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(probe): State<Arc<Probe>>) -> HttpResponse {
    match probe.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::error!(cause = %e, "readiness: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer\n",
            )
                .into_response()
        }
    }
}

/// `events …`.
async fn events(db: &str, command: EventsCommand) -> Result<(), BoxError> {
    match command {
        EventsCommand::Secret => {
            println!("{}", webhook::Secret::generate()?);
            Ok(())
        }
        EventsCommand::DeadLetters { limit } => {
            let store = open(db).await?;
            for d in store.dead_letters(webhook::CONSUMER, limit).await? {
                let line = serde_json::json!({
                    "sequence": d.event.sequence,
                    "tenant": d.event.tenant,
                    "event": d.event.event,
                    "attempts": d.attempts,
                    "lastError": d.last_error,
                    "failed": scimkit::store::timestamp(d.failed),
                });
                println!("{line}");
            }
            store.close().await;
            Ok(())
        }
        EventsCommand::Consumers => {
            let store = open(db).await?;
            for (name, acknowledged) in store.consumers().await? {
                println!("{name}\t{acknowledged}");
            }
            store.close().await;
            Ok(())
        }
        EventsCommand::Forget { name } => {
            let store = open(db).await?;
            let known = store.forget_consumer(&name).await?;
            store.close().await;
            if known {
                Ok(())
            } else {
                Err(format!("no consumer named {name:?}").into())
            }
        }
    }
}

/// The database, for a command that is not `serve`.
/// `analyze`: the store's statistics, refreshed.
async fn analyze(db: &str) -> Result<(), BoxError> {
    let store = open(db).await?;
    let analyzed = store.analyze().await;
    store.close().await;
    analyzed?;
    eprintln!("statistics refreshed");
    Ok(())
}

async fn open(db: &str) -> Result<SqlStore<String>, BoxError> {
    Ok(SqlStore::connect(db, Registry::core())
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", keys::redact(db)))?)
}

/// The webhook's settings from the command line, checked before anything starts.
fn webhook_settings(args: &ServeArgs, issuer: &Url) -> Result<Option<webhook::Webhook>, BoxError> {
    let Some(url) = &args.webhook else {
        return Ok(None);
    };
    let url = Url::parse(url).map_err(|e| format!("--webhook {url}: {e}"))?;
    webhook::Webhook::check_url(&url)?;
    let secret = args.webhook_secret.as_deref().ok_or(
        "--webhook needs --webhook-secret (whsec_…); `scimkit-server events secret` makes one",
    )?;
    Ok(Some(webhook::Webhook {
        url,
        secret: webhook::Secret::parse(secret)?,
        issuer: issuer.to_string(),
        timeout: Duration::from_secs(args.webhook_timeout),
        max_attempts: args.webhook_max_attempts,
        first_backoff: Duration::from_secs(args.webhook_backoff),
        max_backoff: Duration::from_secs(args.webhook_max_backoff),
    }))
}

async fn serve(db: &str, args: ServeArgs) -> Result<(), BoxError> {
    init_logs(&args);
    let base_path = normalise_base_path(&args.base_path);
    let store = open(db).await?;
    keys::first_key(&store).await?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let base_url = match &args.base_url {
        Some(u) => Url::parse(u).map_err(|e| format!("--base-url {u}: {e}"))?,
        None => Url::parse(&format!("http://{addr}{base_path}"))?,
    };
    let hook = webhook_settings(&args, &base_url)?;
    let config = ServiceConfig::with_base_url(base_url)
        .patch_response(match args.patch_response {
            PatchAnswer::Resource => PatchResponse::Resource,
            PatchAnswer::NoContent => PatchResponse::NoContent,
            PatchAnswer::MembersNoContent => PatchResponse::NoContentForMemberChanges,
        })
        .check_references(!args.allow_unknown_members);
    let service = Arc::new(Service::new(store.clone(), config));
    let scim = scimkit_axum::router_with(
        service,
        ApiKeys::new(SqlKeys::new(store.keys())),
        RouterOptions::default().request_timeout(Duration::from_secs(args.request_timeout)),
    );

    let metrics = Arc::new(Metrics::default());
    let mut background = tokio::task::JoinSet::new();
    background.spawn(webhook::prune(
        store.clone(),
        Duration::from_secs(args.event_retention),
    ));
    let owner = webhook::owner_name();
    let delivering = hook.is_some();
    if let Some(hook) = hook {
        tracing::info!(url = %hook.url, "delivering events to the webhook");
        background.spawn(webhook::run(
            store.clone(),
            hook,
            owner.clone(),
            Arc::clone(&metrics),
        ));
    }
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(Probe {
            store: store.clone(),
        }))
        .route(
            "/metrics",
            get({
                let metrics = Arc::clone(&metrics);
                move || async move { metrics.render() }
            }),
        );
    let app = if base_path.is_empty() {
        probes.fallback_service(scim)
    } else {
        let missing = base_path.clone();
        probes
            .nest(&base_path, scim)
            .fallback(move |uri: Uri| async move { not_found(&uri, &missing) })
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        Arc::clone(&metrics),
        metrics::track,
    ));

    tracing::info!(db = %keys::redact(db), %addr, base_path, "listening");
    // The line scripts and operators wait for, on stdout whatever the log format.
    println!("listening on http://{addr}{base_path}");
    let options = ServeOptions::default()
        .header_timeout(Duration::from_secs(args.header_timeout))
        .max_connections(args.max_connections)
        .shutdown_grace(Duration::from_secs(args.shutdown_grace));
    scimkit_axum::serve(listener, app, options, shutdown_signal()).await?;
    // An event being delivered is delivered again by the next start (or instance),
    // which may take the lease at once.
    // Each step bounded, so that a stuck database cannot hold the exit up.
    if tokio::time::timeout(Duration::from_secs(5), background.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("the event tasks did not stop within 5 s; exiting anyway");
    }
    if delivering {
        let release = store.release_consumer(webhook::CONSUMER, &owner);
        if !matches!(
            tokio::time::timeout(Duration::from_secs(2), release).await,
            Ok(Ok(()))
        ) {
            tracing::warn!(
                "could not release the webhook lease; another instance takes it when it expires"
            );
        }
    }
    // A query still running on a dropped connection must not hold the exit up.
    if tokio::time::timeout(Duration::from_secs(5), store.close())
        .await
        .is_err()
    {
        tracing::warn!("the database pool did not close within 5 s; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

fn not_found(uri: &Uri, base_path: &str) -> HttpResponse {
    let e = Error::not_found(format!(
        "nothing at {}; the SCIM API is at {base_path}",
        uri.path()
    ));
    let resp = Response::error(&e);
    let mut out = HttpResponse::new(axum::body::Body::from(resp.body));
    *out.status_mut() = StatusCode::NOT_FOUND;
    out.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(scimkit::service::SCIM_MEDIA_TYPE),
    );
    out
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
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
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalised() {
        assert_eq!(normalise_base_path("/scim/v2/"), "/scim/v2");
        assert_eq!(normalise_base_path("api/scim/v2"), "/api/scim/v2");
        assert_eq!(normalise_base_path("/"), "");
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
