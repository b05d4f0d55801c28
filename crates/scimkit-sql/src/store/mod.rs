//! scimkit's stores on sqlx: [`SqlStore`] keeps resources in PostgreSQL (any number
//! of stateless instances on one database) or SQLite (one file, the embedded
//! default), with one implementation for both.
//!
//! Every SCIM operation is one transaction. Uniqueness (`userName`, as the service
//! asks) is a unique index, answered as 409 `uniqueness`; versions are checked in
//! the same `UPDATE` that writes, so concurrent writers get 412 or a retry, never a
//! lost update. Group members live in their own table, so adding or removing one
//! costs the same whatever the group's size, and deleting a resource removes it from
//! every group that lists it in the same transaction. Filters, sorts and pages are
//! pushed down through [`translate`] on each resource's
//! comparison document. SQLite runs in WAL mode with `synchronous = FULL` (a commit
//! the client saw acknowledged survives a power cut) and writers that take the
//! write lock up front (`BEGIN IMMEDIATE`) and wait for it, so concurrent writers,
//! in one process or several, queue instead of failing. The writers of one process
//! share commits (group commit): each operation runs in a savepoint of the open
//! transaction and is answered once the commit that carries it is on disk, so one
//! flush serves every write that queued meanwhile. A write with nothing to read in
//! between (a user's PATCH, PUT or creation, a group's rename) is one statement on
//! PostgreSQL, so it holds no lock across round trips; on SQLite it queues for the
//! process's one leader, which runs the queued writes, each in a savepoint of its
//! own, on a connection it keeps and drives directly.
//!
//! ```no_run
//! use scimkit::{Registry, service::{Service, ServiceConfig}};
//! use scimkit_sql::store::SqlStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // `postgres://…` for PostgreSQL; a path (or `sqlite::memory:`) for SQLite.
//! let store: SqlStore<String> = SqlStore::connect("scim.db", Registry::core()).await?;
//! let service = Service::new(store, ServiceConfig::default());
//! # let _ = service;
//! # Ok(())
//! # }
//! ```

/// Runs the same sqlx expression on whichever database the pool holds.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Postgres($p) => $body,
            Pool::Sqlite($p) => $body,
        }
    };
}

mod batch;
mod events;
mod keys;
mod migrate;
mod shared;

pub use events::{DeadLetter, EventWaiter};
pub use keys::{KeyTable, StoredKey};

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use scimkit::Registry;
use scimkit::events::Event;
use scimkit::filter::{CompValue, CompareOp, Filter};
use scimkit::schema::{AttributeType, ResourceSchema, SharedResourceSchema};
use scimkit::store::{
    ListQuery, MemberChange, MemberDelta, Membership, Page, Projection, Record, Store, StoreError,
    UniqueValue, apply_query,
};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Transaction};

use crate::{Dialect, Param, Params, Translator, comparison_document, order_by, translate};
use batch::{Arg, Done, Failed, Script};

/// What selects the tenant in a host's request context: every query of a
/// [`SqlStore`] is scoped by it.
pub trait Tenant: Send + Sync {
    /// The tenant's key.
    fn tenant(&self) -> &str;
}

impl Tenant for String {
    fn tenant(&self) -> &str {
        self
    }
}

/// One tenant: the empty key.
impl Tenant for () {
    fn tenant(&self) -> &str {
        ""
    }
}

/// The database behind a store.
#[derive(Debug, Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A [`Store`] on PostgreSQL or SQLite (see the [module documentation](self)).
///
/// `C` is the host's request context; its [`Tenant`] scopes every query.
#[derive(Debug)]
pub struct SqlStore<C = ()> {
    pool: Pool,
    registry: Arc<Registry>,
    /// The attribute whose values live in the member table (`members`).
    members: String,
    /// The queue of this process's SQLite writers, who share commits.
    writers: Arc<batch::Writers>,
    /// The queue of this process's whole-resource writes on PostgreSQL, which
    /// share statements when they meet.
    shared: Arc<shared::SharedWrites>,
    /// Counts this process's commits of events, for its waiting consumers (on
    /// PostgreSQL a task turns each change into a notification that wakes every
    /// process's, see `events::notify_commits`).
    new_events: Arc<tokio::sync::watch::Sender<u64>>,
    /// A filter translator per resource type of `registry`, which keeps the SQL of
    /// the shapes of filter clients send.
    translators: Arc<[Translator]>,
    context: PhantomData<fn(&C)>,
}

impl<C> Clone for SqlStore<C> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            registry: Arc::clone(&self.registry),
            members: self.members.clone(),
            writers: Arc::clone(&self.writers),
            shared: Arc::clone(&self.shared),
            new_events: Arc::clone(&self.new_events),
            translators: Arc::clone(&self.translators),
            context: PhantomData,
        }
    }
}

/// On SQLite, the attributes resources are looked up by, and the columns that hold
/// their comparison values (migration 5): the store writes them with each new row,
/// triggers keep them in step with the comparison document, and each has an index.
const KEY_COLUMNS: [(&str, &str); 4] = [
    ("userName", "k_user_name"),
    ("externalId", "k_external_id"),
    ("displayName", "k_display_name"),
    ("id", "k_id"),
];

/// On PostgreSQL, the attributes equality on which a btree index answers rather
/// than the GIN index of the comparison documents: `id` by the primary key, and
/// `userName` by its expression index.
const PG_KEYS: [(&str, &str); 2] = [("id", "id"), ("userName", "(cmp #>> '{userName}')")];

/// On PostgreSQL, the expression the GIN index holds (migration 9): the comparison
/// document without the attributes of [`PG_KEYS`] and without `meta`, whose times
/// are compared by ranges, which the index cannot answer.
const PG_CONTAINMENT: &str = "(cmp - '{id,userName,meta}'::text[])";

/// The top-level keys [`PG_CONTAINMENT`] leaves out.
const PG_OMITTED: [&str; 3] = ["id", "userName", "meta"];

/// The condition `id_key IN (keys)`, `keys` a list of placeholders of folded ids.
/// On PostgreSQL the index of id keys holds only the keys that differ from their
/// id (migration 8): a resource whose key is its id is found by the primary key.
fn id_key_in(dialect: Dialect, keys: &str) -> String {
    match dialect {
        Dialect::Postgres => format!(
            "(id IN ({keys}) AND id_key IN ({keys}) \
             OR id_key IN ({keys}) AND id_key <> id COLLATE \"C\")"
        ),
        Dialect::Sqlite => format!("id_key IN ({keys})"),
    }
}

/// A backend failure that keeps its cause for the host's logs.
fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

/// How long a PostgreSQL connection may sit idle in the pool before it is tested
/// (a round trip) on its next use.
const PG_IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// How long a SQLite writer waits for the write lock before it reports busy.
const SQLITE_BUSY_WAIT: Duration = Duration::from_secs(10);

/// Begins a SQLite write transaction holding the write lock (`BEGIN IMMEDIATE`),
/// waiting for it (the busy timeout) and then retrying a few times.
///
/// It runs as a task of its own: sqlx awaits once more after a `BEGIN` of its
/// caller's wording, and a caller dropped there (a client that went away) would
/// leave the transaction open on a pooled connection, holding the write lock for
/// good. A task runs to the end; if its caller is gone, the transaction it returns
/// is dropped, which rolls it back.
async fn begin_immediate(
    pool: &SqlitePool,
) -> Result<Transaction<'static, sqlx::Sqlite>, StoreError> {
    let pool = pool.clone();
    let begin = async move {
        let mut attempt = 0;
        loop {
            match pool.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(tx),
                Err(e) if attempt < 3 && is_busy(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => return Err(backend(e)),
            }
        }
    };
    tokio::spawn(begin).await.map_err(StoreError::backend)?
}

/// Whether `sqlite_stat4` is a table of the database: SQLite's `ANALYZE` makes it
/// where SQLite is built to sample values, as the bundled SQLite is.
const HAS_SAMPLES: &str = "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat4')";

/// The samples of the tables the store looks resources up in.
const OWN_SAMPLES: &str =
    "FROM sqlite_stat4 WHERE tbl IN ('scim_resources', 'scim_members', 'scim_unique')";

/// Measures the tables the store looks resources up in for SQLite's planner.
const ANALYZE_SQLITE: &str = "ANALYZE scim_resources; ANALYZE scim_members; ANALYZE scim_unique";

/// Deletes the samples of single values (`sqlite_stat4`) that SQLite's `ANALYZE`
/// takes of the store's tables, keeping the averages (`sqlite_stat1`), and has
/// every connection read the statistics again.
///
/// With samples, SQLite plans a statement again whenever a value newly bound to it
/// might change the plan, and the tenant and resource type that every look-up
/// binds are compared with the samples of each index they lead: a look-up by
/// `userName` was planned again on every request (twice, as it was not kept
/// prepared). The look-ups identity providers make compare the whole key of an
/// index, which SQLite plans on that index from the averages, given that the
/// index of externalId keys leaves out the resources without one (migration 10).
///
/// SQLite reads the statistics when it reads the schema: this connection reads
/// them again here, and a table created and dropped changes the schema, so that
/// every other connection, in this process or another, reads them again too. (A
/// statement a connection prepared while it held samples goes on being planned
/// again until its cache drops it: SQLite keeps which values it depends on.)
async fn drop_samples(tx: &mut Transaction<'_, sqlx::Sqlite>) -> Result<(), StoreError> {
    let exists: bool = sqlx::query_scalar(HAS_SAMPLES)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    if exists {
        sqlx::query(&format!("DELETE {OWN_SAMPLES}"))
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    sqlx::raw_sql(
        "ANALYZE sqlite_schema; \
         CREATE TABLE scim_statistics_changed (x); DROP TABLE scim_statistics_changed",
    )
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Deletes the samples of the store's tables that an `ANALYZE` outside the store
/// took (an older release's, the `sqlite3` shell's), if there are any: see
/// [`drop_samples`]. Without any, it takes no write lock.
async fn drop_foreign_samples(pool: &SqlitePool) -> Result<(), StoreError> {
    let exists: bool = sqlx::query_scalar(HAS_SAMPLES)
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    if !exists {
        return Ok(());
    }
    let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 {OWN_SAMPLES})"))
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    if any {
        let mut tx = begin_immediate(pool).await?;
        drop_samples(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
    }
    Ok(())
}

/// Whether SQLite answered `SQLITE_BUSY` or `SQLITE_LOCKED`.
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| {
            let code: i64 = code.parse().unwrap_or(0);
            matches!(code & 0xff, 5 | 6)
        })
}

impl<C> SqlStore<C> {
    /// Connects to `url` and applies the migrations the database has not seen.
    ///
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else is a SQLite
    /// file (created if missing; `sqlite:` prefix optional), or `sqlite::memory:` /
    /// `:memory:` for a database that lives as long as the store.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be reached or migrated.
    pub async fn connect(url: &str, registry: Registry) -> Result<Self, StoreError> {
        // The database file, for the SQLite leader's own connection.
        let mut file = None;
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // READ COMMITTED whatever the database's default: a write that is one
            // statement re-checks the row version it waited for instead of failing
            // to serialize, and the transactions that write say so themselves.
            let options = PgConnectOptions::from_str(url)
                .map_err(backend)?
                .options([("default_transaction_isolation", "read\\ committed")]);
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    // sqlx's default tests every connection with a round trip before
                    // each use: a second round trip for every statement. Only one
                    // that sat idle is tested now; one that broke since its last
                    // use fails its statement (a 500 for each write it carried) and
                    // leaves the pool.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PG_IDLE_BEFORE_PING {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(backend)?,
            )
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let memory = path == ":memory:" || path.is_empty();
            if !memory {
                file = Some(std::path::PathBuf::from(path));
            }
            let options = if memory {
                SqliteConnectOptions::from_str("sqlite::memory:").map_err(backend)?
            } else {
                SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
            }
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(SQLITE_BUSY_WAIT)
            .foreign_keys(true)
            // Each write of a shared commit runs in a savepoint, which copies the
            // pages it changes to a sub-journal first: in memory, not a temp file
            // written (a system call a page) on every write.
            .pragma("temp_store", "memory");
            let pool = if memory {
                // One connection keeps the in-memory database alive and shared.
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                // A connection to a file in this process cannot have gone away:
                // testing it before each use (sqlx's default) only costs a round
                // trip to its thread.
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
            };
            // Every connection can run the checks by which a script refuses itself.
            let pool = pool.after_connect(|conn, _| {
                Box::pin(
                    async move { sqlx::Executor::execute(conn, batch::CHECKS).await.map(drop) },
                )
            });
            Pool::Sqlite(pool.connect_with(options).await.map_err(backend)?)
        };
        migrate::migrate(&pool).await?;
        if let Pool::Sqlite(p) = &pool {
            drop_foreign_samples(p).await?;
        }
        let registry = Arc::new(registry);
        let dialect = match pool {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::Sqlite(_) => Dialect::Sqlite,
        };
        let translators = registry
            .resource_types()
            .filter_map(|t| SharedResourceSchema::new(Arc::clone(&registry), t.name()))
            .map(|schema| {
                let translator = Translator::new(schema, "cmp", dialect);
                match dialect {
                    Dialect::Sqlite => KEY_COLUMNS
                        .iter()
                        .fold(translator, |t, (attribute, column)| {
                            t.with_key_column(attribute, column)
                        }),
                    Dialect::Postgres => PG_KEYS
                        .iter()
                        .fold(translator, |t, (attribute, column)| {
                            t.with_key_column(attribute, column)
                        })
                        .with_containment_on(PG_CONTAINMENT, &PG_OMITTED),
                }
            })
            .collect();
        let new_events = Arc::new(tokio::sync::watch::Sender::new(0));
        if let Pool::Postgres(p) = &pool {
            events::notify_commits(p.clone(), new_events.subscribe());
        }
        Ok(SqlStore {
            pool,
            registry,
            translators,
            members: "members".to_owned(),
            writers: Arc::new(batch::Writers::new(file)),
            shared: Arc::new(shared::SharedWrites::new(Arc::clone(&new_events))),
            new_events,
            context: PhantomData,
        })
    }

    /// The SQL dialect of the database.
    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Refreshes the query planner's statistics on the store's tables. The database
    /// does this by itself as data grows (autovacuum; for SQLite, run it now and
    /// then); after a bulk import, run it once so that look-ups use their indexes at
    /// once. On SQLite the averages are kept and the samples of single values
    /// deleted, with which SQLite would plan each look-up again on every request,
    /// and every connection, in this process or another, reads the new statistics.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Postgres(p) => sqlx::raw_sql("ANALYZE scim_resources, scim_members, scim_unique")
                .execute(p)
                .await
                .map(|_| ())
                .map_err(backend),
            Pool::Sqlite(p) => {
                let mut tx = begin_immediate(p).await?;
                sqlx::raw_sql(ANALYZE_SQLITE)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                drop_samples(&mut tx).await?;
                tx.commit().await.map_err(backend)
            }
        }
    }

    /// Checks that the database answers (`SELECT 1`), for a readiness probe.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
        .map_err(backend)
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => {
                self.writers.close().await;
                p.close().await;
            }
        }
    }

    /// On PostgreSQL, refuses a write or filter holding U+0000 (400 `invalidValue`)
    /// rather than letting the database fail it (500).
    fn refuse_nul(&self, holds_nul: impl FnOnce() -> bool) -> Result<(), StoreError> {
        if matches!(self.pool, Pool::Postgres(_)) && holds_nul() {
            return Err(StoreError::Invalid(NUL_REFUSED.to_owned()));
        }
        Ok(())
    }

    /// Whether `id` cannot name a stored resource (on PostgreSQL, none holds U+0000).
    fn unstorable_id(&self, id: &str) -> bool {
        matches!(self.pool, Pool::Postgres(_)) && id.contains('\0')
    }

    /// SQL written for PostgreSQL (`$1`, `::jsonb`) in this store's dialect.
    fn sql<'s>(&self, postgres: &'s str) -> Cow<'s, str> {
        match self.pool {
            Pool::Postgres(_) => Cow::Borrowed(postgres),
            Pool::Sqlite(_) => Cow::Owned(
                postgres
                    .replace("::jsonb", "")
                    .replace("::text", "")
                    .replace('$', "?"),
            ),
        }
    }

    /// Wakes the consumers waiting for events, after a commit: this process's at
    /// once, and on PostgreSQL every process's through a notification.
    fn announce(&self, events: &[Event]) {
        self.announcer(events)();
    }

    /// What [`announce`](Self::announce)s `events`, to run once they are committed.
    fn announcer(&self, events: &[Event]) -> impl FnOnce() + Send + 'static {
        let new_events = (!events.is_empty()).then(|| Arc::clone(&self.new_events));
        move || {
            if let Some(counter) = new_events {
                counter.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    fn schema(&self, resource_type: &str) -> Result<ResourceSchema<'_>, StoreError> {
        self.registry.resource_type(resource_type).ok_or_else(|| {
            StoreError::backend(format!(
                "no resource type {resource_type:?} is registered with the store"
            ))
        })
    }

    /// Whether values of the member attribute compare case-exactly, if `schema` has
    /// one kept in the member table.
    fn member_rule(&self, schema: &ResourceSchema<'_>) -> Option<bool> {
        let found = schema.attribute(None, &self.members)?;
        let attr = found.attribute;
        (attr.is_multi_valued() && attr.attr_type() == AttributeType::Complex && !found.extension)
            .then(|| {
                attr.sub_attribute("value")
                    .is_some_and(|v| v.compares_case_exact())
            })
    }
}

/// Whether a JSON value holds U+0000 anywhere, in a key or a string. The value's
/// depth is bounded by the JSON parser that made it.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// What PostgreSQL's `text` and `jsonb` cannot hold, said so a client can act on it.
const NUL_REFUSED: &str = "the NUL character (U+0000) cannot be stored or searched for in \
     this service's database; remove it from the value";

/// A member's key: its id, folded unless ids compare case-exactly.
fn member_key(id: &str, case_exact: bool) -> String {
    if case_exact {
        id.to_owned()
    } else {
        id.to_lowercase()
    }
}

/// The resource without its member list, and the list.
fn split_members(resource: &Value, attribute: &str) -> (Value, Vec<Value>) {
    let mut doc = resource.clone();
    let mut members = Vec::new();
    if let Value::Object(map) = &mut doc {
        let key = map
            .keys()
            .find(|k| k.eq_ignore_ascii_case(attribute))
            .cloned();
        if let Some(Value::Array(list)) = key.and_then(|k| map.remove(&k)) {
            members = list;
        }
    }
    (doc, members)
}

/// Members a store always returns: the service needs them whatever is projected.
fn is_core_member(key: &str) -> bool {
    ["id", "schemas", "meta"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
        || key.contains(':')
}

fn project(resource: &mut Value, projection: &Projection) {
    if projection != &Projection::all() {
        if let Value::Object(map) = resource {
            map.retain(|k, _| is_core_member(k) || projection.wants(k));
        }
    }
}

/// The `meta.lastModified` text and its comparison-document form for `t`.
fn modified(t: chrono::DateTime<chrono::Utc>) -> (String, String) {
    (scimkit::store::timestamp(t), crate::instant_text(&t))
}

/// The `n`-th placeholder in `dialect`.
fn ph(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${n}"),
        Dialect::Sqlite => format!("?{n}"),
    }
}

/// Runs `$body` (which evaluates to `Result<T, StoreError>` and uses `$tx`, a
/// `&mut` connection) in a write transaction, committed when the body succeeds.
macro_rules! write_tx {
    ($store:expr, $tx:ident => $body:expr) => {{
        let mut attempt = 0;
        loop {
            let out: Result<_, StoreError> = match &$store.pool {
                Pool::Postgres(pool) => {
                    // READ COMMITTED whatever the database's default: rows that
                    // many writers update (a big group's) would turn a stricter level
                    // into serialization failures.
                    let mut $tx = pool
                        .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
                        .await
                        .map_err(backend)?;
                    match async { $body }.await {
                        Ok(v) => $tx.commit().await.map(|()| v).map_err(backend),
                        Err(e) => Err(e),
                    }
                }
                Pool::Sqlite(pool) => {
                    // This process's writers queue here, woken in turn, rather than
                    // in SQLite's busy handler, which sleeps and polls, and share
                    // commits; writers in other processes meet at the database's lock.
                    let mut turn = $store.writers.turn(pool).await?;
                    let mut $tx = turn.savepoint().await?;
                    match async { $body }.await {
                        Ok(v) => match $tx.commit().await {
                            Ok(()) => turn.finish().await.map(|()| v),
                            Err(e) => {
                                turn.abandon().await;
                                Err(backend(e))
                            }
                        },
                        Err(e) => {
                            let _ = $tx.rollback().await;
                            turn.abandon().await;
                            Err(e)
                        }
                    }
                }
            };
            // A deadlock or serialization failure rolled everything back: the
            // operation runs again from the start, a few times.
            match out {
                Err(e) if attempt < 3 && is_transient(&e) => attempt += 1,
                out => break out,
            }
        }
    }};
}

/// Whether a failure is one the database asks to retry: PostgreSQL's deadlock
/// (40P01) or serialization failure (40001), SQLite's busy or locked.
fn is_transient(e: &StoreError) -> bool {
    let StoreError::Backend(source) = e else {
        return false;
    };
    let Some(sqlx_error) = source.downcast_ref::<sqlx::Error>() else {
        return false;
    };
    is_busy(sqlx_error)
        || sqlx_error
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40P01" || code == "40001")
}

/// Runs `$body` in a read transaction: one snapshot for every statement in it.
macro_rules! read_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.pool {
            Pool::Postgres(pool) => {
                let mut $tx = pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(backend)?;
                let out = $body;
                // Ended here, not by a rollback queued on drop, so the connection
                // is free at once.
                $tx.commit().await.map_err(backend)?;
                out
            }
            Pool::Sqlite(pool) => {
                let mut $tx = pool.begin().await.map_err(backend)?;
                let out = $body;
                $tx.commit().await.map_err(backend)?;
                out
            }
        }
    };
}

/// Binds a [`Param`] of the translation.
macro_rules! bind_param {
    ($query:expr, $p:expr) => {
        match $p {
            Param::Text(s) => $query.bind(s),
            Param::Real(f) => $query.bind(f),
            Param::Bool(b) => $query.bind(b),
        }
    };
}

/// Binds a list page's parameters in the order [`ListPlan`]'s SQL numbers them: the
/// translation's values, the member keys, tenant and resource type, then the keyset
/// position if there is one.
macro_rules! bind_page {
    ($query:expr, $params:expr, $member_keys:expr, $tenant:expr, $resource_type:expr, $after:expr) => {{
        let mut q = $query;
        for p in $params {
            q = bind_param!(q, p);
        }
        for k in $member_keys {
            q = q.bind(k);
        }
        q = q.bind($tenant).bind($resource_type);
        if let Some(after) = $after {
            q = q.bind(after);
        }
        q
    }};
}

/// The events of a member delta, from the touched members before and after it (by
/// key), in request order.
fn member_events(
    delta: &MemberDelta,
    before: &HashMap<String, Option<Value>>,
    after: &HashMap<String, Option<Value>>,
    id: &str,
    resource_type: &str,
    version: u64,
) -> Vec<Event> {
    let id_of = |m: &Value| m.get("value").and_then(Value::as_str).map(str::to_owned);
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let mut done = HashSet::new();
    for change in &delta.changes {
        let Some(key) = change_key(change, delta.case_exact) else {
            continue;
        };
        if !done.insert(key.clone()) {
            continue;
        }
        match (before.get(&key), after.get(&key)) {
            (Some(None), Some(Some(m))) => added.extend(id_of(m)),
            (Some(Some(m)), Some(None)) => removed.extend(id_of(m)),
            _ => {}
        }
    }
    Event::of_members(
        resource_type,
        id,
        version,
        delta.modified,
        &delta.attribute,
        added,
        removed,
    )
}

/// Whether `error` is a unique-index violation.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// The rows written for a list of members: key, id, position, JSON.
fn member_rows(
    members: &[Value],
    case_exact: bool,
    first: i64,
) -> Vec<(String, String, i64, String)> {
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(members.len());
    for m in members {
        let Some(id) = m.get("value").and_then(Value::as_str) else {
            continue;
        };
        let key = member_key(id, case_exact);
        if seen.insert(key.clone()) {
            let position = first + rows.len() as i64;
            rows.push((key, id.to_owned(), position, m.to_string()));
        }
    }
    rows
}

/// Rows per multi-row `INSERT` of members.
const MEMBER_CHUNK: usize = 500;

/// Inserts member rows in chunks, then returns how many.
macro_rules! insert_members {
    ($store:expr, $tx:expr, $tenant:expr, $rt:expr, $group:expr, $rows:expr) => {{
        let dialect = $store.dialect();
        for chunk in $rows.chunks(MEMBER_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO scim_members (tenant, resource_type, group_id, value_key, value, position, member) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let n = i * 4 + 4;
                let cast = if dialect == Dialect::Postgres { "::jsonb" } else { "" };
                sql.push_str(&format!(
                    "({}, {}, {}, {}, {}, {}, {}{cast})",
                    ph(dialect, 1),
                    ph(dialect, 2),
                    ph(dialect, 3),
                    ph(dialect, n),
                    ph(dialect, n + 1),
                    ph(dialect, n + 2),
                    ph(dialect, n + 3)
                ));
            }
            let mut q = sqlx::query(&sql).bind($tenant).bind($rt).bind($group);
            for (key, id, position, json) in chunk {
                q = q.bind(key).bind(id).bind(*position).bind(json);
            }
            q.execute(&mut *$tx).await.map_err(backend)?;
        }
        $rows.len() as i64
    }};
}

/// The statement(s) that make a resource's unique values exactly `k` pairs of
/// attribute and value (`$4`/`$5`, `$6`/`$7`, …) owned by the resource `$3` of type
/// `$2` in tenant `$1`: with `replacing`, the resource's other values are released
/// first. A value the resource already owns is left as it is (a write that keeps its
/// userName rewrites no row of the claims); the statement returns the attribute of
/// every value the resource owns afterwards, so a value missing from the answer is
/// one another resource holds (a conflict). One statement on PostgreSQL; on SQLite,
/// the release (when replacing), then with values their claim and a look-up of
/// what the resource owns, the last statement's rows.
fn claim_sql(dialect: Dialect, k: usize, replacing: bool) -> String {
    let pairs = |sep: &str, row: &dyn Fn(usize, usize) -> String| {
        (0..k)
            .map(|i| row(4 + 2 * i, 5 + 2 * i))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let (t, r, id) = (ph(dialect, 1), ph(dialect, 2), ph(dialect, 3));
    let owner = format!("tenant = {t} AND resource_type = {r} AND id = {id}");
    let mut release = format!("DELETE FROM scim_unique WHERE {owner}");
    let mut claim = format!(
        "INSERT INTO scim_unique (tenant, resource_type, attribute, value, id) VALUES {} \
         ON CONFLICT (tenant, resource_type, attribute, value) DO NOTHING",
        pairs(", ", &|a, v| format!(
            "({t}, {r}, {}, {}, {id})",
            ph(dialect, a),
            ph(dialect, v)
        ))
    );
    match dialect {
        Dialect::Postgres => {
            let values = pairs(", ", &|a, v| {
                format!("({}, {})", ph(dialect, a), ph(dialect, v))
            });
            if k > 0 {
                release.push_str(&format!(" AND (attribute, value) NOT IN (VALUES {values})"));
            }
            claim.push_str(" RETURNING attribute");
            match (replacing, k) {
                (false, _) => claim,
                (true, 0) => format!("WITH released AS ({release}) SELECT NULL::text WHERE false"),
                // The main query sees the claims as they were before the statement:
                // the values the resource owned already; `claimed` returns those it
                // took now.
                (true, _) => format!(
                    "WITH released AS ({release}), claimed AS ({claim}) \
                     SELECT attribute FROM claimed UNION ALL \
                     SELECT attribute FROM scim_unique WHERE {owner} AND (attribute, value) IN (VALUES {values})"
                ),
            }
        }
        // Plain comparisons rather than a list of rows or RETURNING, either of
        // which SQLite builds a temporary table for on every run. Each statement's
        // parameters run from ?1 without gaps (sqlx binds a statement's unnamed
        // positions in turn and stops beyond its arguments).
        Dialect::Sqlite => {
            // The values named, as plain comparisons.
            let wanted = pairs(" OR ", &|a, v| {
                format!("(attribute = ?{a} AND value = ?{v})")
            });
            // Of the values named, those the resource owns once the claim ran.
            let owned = format!("SELECT attribute FROM scim_unique WHERE {owner} AND ({wanted})");
            if k > 0 {
                release.push_str(&format!(" AND NOT ({wanted})"));
            }
            match (replacing, k) {
                (false, _) => format!("{claim}; {owned}"),
                (true, 0) => release,
                (true, _) => format!("{release}; {claim}; {owned}"),
            }
        }
    }
}

/// Claims `$unique` for `$id` in `$tx` (see [`claim_sql`]); evaluates to
/// `Err(Conflict)` naming the first value another resource holds.
macro_rules! claim_unique {
    ($store:expr, $tx:expr, $tenant:expr, $rt:expr, $id:expr, $unique:expr, $replacing:expr) => {{
        let distinct = distinct_unique($unique);
        if distinct.is_empty() && !$replacing {
            Ok(())
        } else {
            let sql = claim_sql($store.dialect(), distinct.len(), $replacing);
            let mut q = sqlx::query_scalar::<_, String>(&sql)
                .bind($tenant)
                .bind($rt)
                .bind($id);
            for u in &distinct {
                q = q.bind(&u.attribute).bind(&u.value);
            }
            let owned: Vec<String> = q.fetch_all(&mut *$tx).await.map_err(backend)?;
            claimed(&distinct, &owned)
        }
    }};
}

/// The distinct values of `unique`, in order.
fn distinct_unique(unique: &[UniqueValue]) -> Vec<&UniqueValue> {
    let mut distinct: Vec<&UniqueValue> = Vec::with_capacity(unique.len());
    for u in unique {
        if !distinct
            .iter()
            .any(|d| d.attribute == u.attribute && d.value == u.value)
        {
            distinct.push(u);
        }
    }
    distinct
}

/// Whether a claim of `distinct` got them all, from the attributes the resource
/// owns after it (see [`claim_sql`]): else a conflict naming the first it missed.
fn claimed<U: std::borrow::Borrow<UniqueValue>>(
    distinct: &[U],
    owned: &[String],
) -> Result<(), StoreError> {
    match distinct
        .iter()
        .map(U::borrow)
        .find(|u| !owned.contains(&u.attribute))
    {
        Some(u) => Err(StoreError::Conflict(format!(
            "{} {:?} is already in use",
            u.attribute, u.value
        ))),
        None => Ok(()),
    }
}

/// The answer to a script refused by its claims check (see [`claim_script`]) whose
/// answers name no attribute it failed to claim: one of several values of one
/// attribute is another resource's.
fn refused_claim(distinct: &[UniqueValue]) -> StoreError {
    let values: Vec<String> = distinct
        .iter()
        .map(|u| format!("{} {:?}", u.attribute, u.value))
        .collect();
    StoreError::Conflict(format!("one of {} is already in use", values.join(", ")))
}

/// Appends to `script` the statements that claim `unique` for `id` in place of
/// the values it owned (see [`claim_sql`]); returns the indexes of those whose
/// rows are the attributes it owns afterwards (see [`claims_held`]).
///
/// A write that leaves its unique values as they were (most PATCHes: a name, a
/// flag) skips them: when the resource owns those values and no other, releasing
/// and claiming would change nothing.
fn claim_script(
    script: &mut Script,
    tenant: &str,
    resource_type: &str,
    id: &str,
    unique: &[UniqueValue],
    replacing: bool,
) -> Result<Range<usize>, StoreError> {
    let distinct = distinct_unique(unique);
    if distinct.is_empty() && !replacing {
        return Ok(0..0);
    }
    let mut args: Vec<Arg> = vec![tenant.into(), resource_type.into(), id.into()];
    for u in &distinct {
        args.push(u.attribute.as_str().into());
        args.push(u.value.as_str().into());
    }
    let k = distinct.len();
    let texts = ClaimTexts::of(k, replacing);
    let claims = |script: &mut Script| {
        let at = script.push(&texts.claims, &args)?;
        if k > 0 {
            // A value another resource holds: the script stops, refused.
            script.check(&texts.owned, &args)?;
        }
        Ok(at)
    };
    let at = if replacing && k > 0 {
        script.unless(&texts.unchanged, &args, claims)?
    } else {
        claims(script)?
    };
    // The last statement of the claims names what the resource owns, when it
    // claims values.
    Ok(if k == 0 {
        at.end..at.end
    } else {
        at.end - 1..at.end
    })
}

/// The SQLite texts of [`claim_script`] for `k` distinct values: they depend on
/// nothing else, so the common counts are built once.
#[derive(Debug, Clone)]
struct ClaimTexts {
    /// The claims themselves (see [`claim_sql`]).
    claims: String,
    /// The check that the resource owns every value named (`?4`, `?5` …): each
    /// value is one look-up of its key.
    owned: String,
    /// Whether the resource owns exactly the values named already, in which case
    /// releasing and claiming would change nothing. The values are unique
    /// (distinct, and keys of `scim_unique`): the resource owns exactly them when
    /// it owns `k` rows and `k` of them are among them.
    unchanged: String,
}

/// How many distinct unique values a write may name for its claims' texts to be
/// built once (a user has its userName, and an externalId where the host asks).
const CACHED_CLAIMS: usize = 4;

impl ClaimTexts {
    /// The texts for `k` values, replacing what the resource owned or not.
    fn of(k: usize, replacing: bool) -> Cow<'static, ClaimTexts> {
        static CACHED: std::sync::LazyLock<Vec<[ClaimTexts; 2]>> = std::sync::LazyLock::new(|| {
            (0..=CACHED_CLAIMS)
                .map(|k| [ClaimTexts::build(k, false), ClaimTexts::build(k, true)])
                .collect()
        });
        match CACHED.get(k) {
            Some(texts) => Cow::Borrowed(&texts[usize::from(replacing)]),
            None => Cow::Owned(ClaimTexts::build(k, replacing)),
        }
    }

    fn build(k: usize, replacing: bool) -> ClaimTexts {
        let each = |sep: &str, f: &dyn Fn(usize, usize) -> String| {
            (0..k)
                .map(|i| f(4 + 2 * i, 5 + 2 * i))
                .collect::<Vec<_>>()
                .join(sep)
        };
        let owned = each(" AND ", &|a, v| {
            format!(
                "EXISTS (SELECT 1 FROM scim_unique WHERE tenant = ?1 AND resource_type = ?2 \
                 AND attribute = ?{a} AND value = ?{v} AND id = ?3)"
            )
        });
        let named = each(" OR ", &|a, v| {
            format!("(attribute = ?{a} AND value = ?{v})")
        });
        ClaimTexts {
            claims: claim_sql(Dialect::Sqlite, k, replacing),
            owned,
            unchanged: format!(
                "(SELECT count(*) = {k} AND total({named}) = {k} FROM scim_unique \
                 WHERE tenant = ?1 AND resource_type = ?2 AND id = ?3)"
            ),
        }
    }
}

/// Whether the claims at `at` (see [`claim_script`]) got every value of
/// `distinct`, else a conflict naming the first they missed (see [`claimed`]).
/// Skipped, they were the resource's already.
fn claims_held(
    distinct: &[UniqueValue],
    answers: &[Done],
    at: Range<usize>,
) -> Result<(), StoreError> {
    match answers.get(at.clone()) {
        Some(done) if !done.is_empty() && done.iter().all(|d| d.skipped) => Ok(()),
        _ => claimed(distinct, &owned_attributes(answers, at)?),
    }
}

/// The attributes the statements at `at` of a script answered (see
/// [`claim_script`]).
fn owned_attributes(answers: &[Done], at: Range<usize>) -> Result<Vec<String>, StoreError> {
    let mut owned = Vec::new();
    for done in answers.get(at).unwrap_or_default() {
        for row in &done.rows {
            let attribute = row.clone().ok_or_else(|| {
                StoreError::backend("a claim answered a row without its attribute")
            })?;
            owned.push(attribute);
        }
    }
    Ok(owned)
}

/// Appends to `script` the statements that record `events` (see [`events_sql`]).
fn event_script(script: &mut Script, tenant: &str, events: &[Event]) -> Result<(), StoreError> {
    for chunk in events.chunks(EVENT_CHUNK) {
        let mut args: Vec<Arg> = vec![(chunk.len() as i64).into(), tenant.into()];
        for e in chunk {
            args.push(e.id.as_str().into());
            args.push(e.time.timestamp_millis().into());
            args.push(
                serde_json::to_string(e)
                    .map_err(StoreError::backend)?
                    .into(),
            );
        }
        script.push(&events_sql(Dialect::Sqlite, chunk.len()), &args)?;
    }
    Ok(())
}

/// The `WITH` parts, after a CTE `written` that returns a row when the resource's
/// row was written, that claim `k` unique values for `$3` of type `$2` in tenant
/// `$1` (attribute and value in turn from `$first`) and append `n` events (id,
/// time and JSON each, after the values), all of it only if `written` returned a
/// row. With `replacing`, the values the resource owned and no longer names are
/// released. A value another resource holds makes the statement fail (a unique
/// violation of `scim_unique`), so that none of it is written; the values the
/// resource owns already are left as they are. PostgreSQL only: see
/// [`events_sql`] for the placeholders the events are written under.
fn pg_claims_and_events(k: usize, n: usize, first: usize, replacing: bool) -> String {
    let mut out = String::with_capacity(900 + 24 * k + 40 * n);
    let pairs = (0..k)
        .map(|i| format!("(${}, ${})", first + 2 * i, first + 2 * i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    if k > 0 {
        out.push_str(&format!(", wanted (attribute, value) AS (VALUES {pairs})"));
    }
    if replacing {
        out.push_str(
            ", released AS (DELETE FROM scim_unique \
             WHERE tenant = $1 AND resource_type = $2 AND id = $3 AND EXISTS (SELECT 1 FROM written)",
        );
        if k > 0 {
            out.push_str(" AND (attribute, value) NOT IN (SELECT attribute, value FROM wanted)");
        }
        out.push(')');
    }
    if k > 0 {
        out.push_str(
            ", claimed AS (INSERT INTO scim_unique (tenant, resource_type, attribute, value, id) \
             SELECT $1, $2, w.attribute, w.value, $3 FROM wanted AS w \
             WHERE EXISTS (SELECT 1 FROM written) AND NOT EXISTS (SELECT 1 FROM scim_unique AS u \
             WHERE u.tenant = $1 AND u.resource_type = $2 AND u.attribute = w.attribute \
             AND u.value = w.value AND u.id = $3))",
        );
    }
    if n > 0 {
        let p = first + 2 * k;
        let values = (0..n)
            .map(|i| {
                let at = p + 3 * i;
                format!("({}, ${at}, ${}::int8, ${})", i + 1, at + 1, at + 2)
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            ", recorded AS (INSERT INTO scim_events (sequence, tenant, event_id, time_ms, event) \
             SELECT -nextval('scim_event_pending'), $1, v.id, v.ms, v.ev::jsonb \
             FROM (VALUES {values}) AS v (ord, id, ms, ev) \
             WHERE EXISTS (SELECT 1 FROM written) ORDER BY v.ord)"
        ));
    }
    out
}

/// Runs one statement made with [`pg_claims_and_events`] on its own (its own
/// transaction), with `head` bound to the parameters before the claimed values
/// (`$1` to `$3` the tenant, resource type and id); returns how many rows
/// `written` wrote. A unique violation of `scim_unique` becomes a conflict naming
/// the value another resource holds; a deadlock or serialization failure runs it
/// again, a few times.
async fn pg_write(
    pool: &PgPool,
    sql: &str,
    head: &[Arg],
    distinct: &[&UniqueValue],
    events: &[EventRow],
) -> Result<i64, StoreError> {
    let text = |i: usize| match head.get(i) {
        Some(Arg::Text(s)) => &**s,
        _ => "",
    };
    let mut attempt = 0;
    loop {
        let mut q = sqlx::query_scalar::<_, i64>(sql);
        for arg in head {
            q = match arg {
                Arg::Text(s) => q.bind(&**s),
                Arg::Int(i) => q.bind(*i),
                Arg::Null => q.bind(None::<i64>),
            };
        }
        for u in distinct {
            q = q.bind(u.attribute.as_str()).bind(u.value.as_str());
        }
        for e in events {
            q = q.bind(e.id.as_str()).bind(e.ms).bind(e.json.as_str());
        }
        let failed = match q.fetch_one(pool).await {
            Ok(written) => return Ok(written),
            Err(e) => e,
        };
        let constraint = failed.as_database_error().and_then(|d| d.constraint());
        if is_unique_violation(&failed) && constraint == Some("scim_unique_pkey") {
            return Err(held_elsewhere(pool, text(0), text(1), text(2), distinct).await);
        }
        let error = backend(failed);
        if attempt < 3 && is_transient(&error) {
            attempt += 1;
            continue;
        }
        return Err(error);
    }
}

/// An event as the outbox stores it.
struct EventRow {
    /// The event's id.
    id: String,
    /// Its time, in milliseconds since the Unix epoch.
    ms: i64,
    /// The event, serialized.
    json: String,
}

/// `events` as the outbox stores them.
fn event_rows(events: &[Event]) -> Result<Vec<EventRow>, StoreError> {
    events
        .iter()
        .map(|e| {
            Ok(EventRow {
                id: e.id.clone(),
                ms: e.time.timestamp_millis(),
                json: serde_json::to_string(e).map_err(StoreError::backend)?,
            })
        })
        .collect()
}

/// The conflict for a claim of `distinct` that another resource beat: names the
/// first value another resource holds.
async fn held_elsewhere(
    pool: &PgPool,
    tenant: &str,
    resource_type: &str,
    id: &str,
    distinct: &[&UniqueValue],
) -> StoreError {
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT attribute, value FROM scim_unique \
         WHERE tenant = $1 AND resource_type = $2 AND id <> $3 \
         AND (attribute, value) IN (SELECT * FROM unnest($4::text[], $5::text[]))",
    )
    .bind(tenant)
    .bind(resource_type)
    .bind(id)
    .bind(
        distinct
            .iter()
            .map(|u| u.attribute.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        distinct
            .iter()
            .map(|u| u.value.as_str())
            .collect::<Vec<_>>(),
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let taken = distinct
        .iter()
        .find(|u| held.iter().any(|(a, v)| *a == u.attribute && *v == u.value));
    match (taken, distinct) {
        (Some(u), _) | (None, [u]) => {
            StoreError::Conflict(format!("{} {:?} is already in use", u.attribute, u.value))
        }
        // Released meanwhile (or not found): which one is not known any more.
        (None, _) => StoreError::Conflict(format!(
            "one of the values of {} is already in use",
            distinct
                .iter()
                .map(|u| u.attribute.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Events written by one statement at most (three parameters each).
const EVENT_CHUNK: usize = 1_000;

/// One statement that appends `n` events: `$1` is `n`, `$2` the tenant, then id,
/// time and JSON for each event. On SQLite (two statements) it takes
/// their sequences from the head row, which stays locked until the transaction
/// ends: writers are one at a time there anyway. On PostgreSQL it writes them under
/// negative placeholders, in order, for readers to number once committed (see
/// `number_events`), so that concurrent writers do not queue for the head row
/// until their commits are durable. Consumers are woken after the commit (see
/// [`SqlStore::announce`]).
fn events_sql(dialect: Dialect, n: usize) -> String {
    let mut values = String::with_capacity(n * 24);
    for i in 0..n {
        if i > 0 {
            values.push_str(", ");
        }
        let p = 3 + i * 3;
        values.push_str(&match dialect {
            Dialect::Postgres => format!("({}, ${p}, ${}::int8, ${})", i + 1, p + 1, p + 2),
            Dialect::Sqlite => format!("({}, ?{p}, ?{}, ?{})", i + 1, p + 1, p + 2),
        });
    }
    match dialect {
        // The placeholders are drawn after the sort, in event order.
        Dialect::Postgres => format!(
            "INSERT INTO scim_events (sequence, tenant, event_id, time_ms, event) \
             SELECT -nextval('scim_event_pending'), $2, v.id, v.ms, v.ev::jsonb \
             FROM (VALUES {values}) AS v (ord, id, ms, ev) ORDER BY v.ord LIMIT $1"
        ),
        Dialect::Sqlite => format!(
            "UPDATE scim_event_head SET last = last + ?1; \
             INSERT INTO scim_events (sequence, tenant, event_id, time_ms, event) \
             SELECT h.last - ?1 + v.column1, ?2, v.column2, v.column3, v.column4 \
             FROM scim_event_head AS h, (VALUES {values}) AS v"
        ),
    }
}

/// Appends `$events` to the outbox in the transaction `$tx`, as its last
/// statements (see [`events_sql`]): numbered in commit order, and a rollback
/// leaves no gap. The caller [announces](SqlStore::announce) them once committed.
macro_rules! record_events {
    ($store:expr, $tx:expr, $tenant:expr, $events:expr) => {{
        let events: &[Event] = $events;
        for chunk in events.chunks(EVENT_CHUNK) {
            let sql = events_sql($store.dialect(), chunk.len());
            let mut q = sqlx::query(&sql).bind(chunk.len() as i64).bind($tenant);
            for e in chunk {
                q = q
                    .bind(&e.id)
                    .bind(e.time.timestamp_millis())
                    .bind(serde_json::to_string(e).map_err(StoreError::backend)?);
            }
            q.execute(&mut *$tx).await.map_err(backend)?;
        }
    }};
}

/// What `replace` and `replace_except` write: the record if the stored version is
/// `expected_version`, its unique values and its events.
struct Whole<'a> {
    record: Record,
    expected_version: u64,
    unique: &'a [UniqueValue],
    events: &'a [Event],
}

impl<C: Tenant + 'static> SqlStore<C> {
    /// A stored row as the record `get` answers: its members attached when they
    /// were read, then projected.
    fn stored_record(
        &self,
        id: &str,
        version: i64,
        text: &str,
        members: Option<&[String]>,
        projection: &Projection,
    ) -> Result<Record, StoreError> {
        let mut resource: Value = serde_json::from_str(text).map_err(StoreError::backend)?;
        if let Some(list) = members {
            attach_members(&mut resource, &self.members, list)?;
        }
        project(&mut resource, projection);
        Ok(Record {
            id: id.to_owned(),
            version: version as u64,
            resource,
        })
    }

    /// `replace`, and with `members` false `replace_except`: the member rows and
    /// count stay as stored.
    async fn write_whole(
        &self,
        ctx: &C,
        resource_type: &str,
        write: Whole<'_>,
        members: bool,
    ) -> Result<Record, StoreError> {
        let Whole {
            record,
            expected_version,
            unique,
            events,
        } = write;
        if self.unstorable_id(&record.id) {
            return Err(StoreError::NotFound(record.id));
        }
        self.refuse_nul(|| {
            has_nul(&record.resource) || unique.iter().any(|u| u.value.contains('\0'))
        })?;
        let schema = self.schema(resource_type)?;
        let kept = self.member_rule(&schema);
        if !members
            && kept.is_some()
            && record
                .resource
                .as_object()
                .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case(&self.members)))
        {
            // The caller read the resource without its members: one that carries
            // them now would write them where nothing reads them.
            return Err(StoreError::backend(format!(
                "replace_except was given '{}', the attribute it must leave alone",
                self.members
            )));
        }
        let rule = kept.filter(|_| members);
        let (doc, members) = match rule {
            Some(_) => {
                let (doc, members) = split_members(&record.resource, &self.members);
                (Cow::Owned(doc), members)
            }
            None => (Cow::Borrowed(&record.resource), Vec::new()),
        };
        let rows = member_rows(&members, rule.unwrap_or(false), 1);
        let cmp = comparison_document(&schema, &doc).to_string();
        let tenant = ctx.tenant();
        let update = self.sql(
            "UPDATE scim_resources SET version = $5, resource = $6::jsonb, cmp = $7::jsonb, \
             member_count = COALESCE($8, member_count) \
             WHERE tenant = $1 AND resource_type = $2 AND id = $3 AND version = $4",
        );
        let exists = self.sql(
            "SELECT version FROM scim_resources WHERE tenant = $1 AND resource_type = $2 AND id = $3",
        );
        let one_call = match (&self.pool, rule) {
            (Pool::Sqlite(_), None) => true,
            (Pool::Postgres(_), None) => events.len() <= EVENT_CHUNK,
            _ => false,
        };
        if one_call {
            // Nothing to read in between: the whole write is one script for the SQLite
            // leader, one statement on PostgreSQL (shared with the writes that meet it).
            let resource = doc.to_string();
            let id = record.id.clone();
            let written = match &self.pool {
                Pool::Sqlite(pool) => {
                    // The parameters `update` takes ($8: the member count stays).
                    let head: [Arg; 8] = [
                        tenant.into(),
                        resource_type.into(),
                        record.id.as_str().into(),
                        (expected_version as i64).into(),
                        (record.version as i64).into(),
                        resource.into(),
                        cmp.into(),
                        Arg::Null,
                    ];
                    let mut script = Script::new();
                    let update_at = script.push(&update, &head)?;
                    // No row of that version: the script stops, refused.
                    script.check("changes() > 0", &[])?;
                    let claims =
                        claim_script(&mut script, tenant, resource_type, &id, unique, true)?;
                    event_script(&mut script, tenant, events)?;
                    let distinct: Vec<UniqueValue> =
                        distinct_unique(unique).into_iter().cloned().collect();
                    let keep = move |answers: Vec<Done>, failed: Option<Failed>| {
                        let refused = match failed {
                            Some(f) if !f.is_refusal() => return Err(f.into_store_error()),
                            f => f.is_some(),
                        };
                        if answers.get(update_at.start).is_none_or(|d| d.changes == 0) {
                            return Err(StoreError::PreconditionFailed);
                        }
                        claims_held(&distinct, &answers, claims)?;
                        match refused {
                            true => Err(refused_claim(&distinct)),
                            false => Ok(record),
                        }
                    };
                    let announce = self.announcer(events);
                    self.writers.run(pool, script, keep, announce).await
                }
                Pool::Postgres(pool) => {
                    let write = shared::Replace {
                        tenant: tenant.to_owned(),
                        resource_type: resource_type.to_owned(),
                        id: id.clone(),
                        expected: expected_version as i64,
                        version: record.version as i64,
                        resource,
                        cmp,
                        unique: distinct_unique(unique).into_iter().cloned().collect(),
                        events: event_rows(events)?,
                    };
                    // The runner announces the events once committed.
                    match self.shared.replace(pool, write).await? {
                        false => Err(StoreError::PreconditionFailed),
                        true => Ok(record),
                    }
                }
            };
            return match written {
                // No row of that version: none at all is a 404.
                Err(StoreError::PreconditionFailed) => {
                    let found: Option<i64> = on_pool!(&self.pool, p => {
                        sqlx::query_scalar(&exists)
                            .bind(tenant)
                            .bind(resource_type)
                            .bind(&id)
                            .fetch_optional(p)
                            .await
                    })
                    .map_err(backend)?;
                    Err(match found {
                        None => StoreError::NotFound(id),
                        Some(_) => StoreError::PreconditionFailed,
                    })
                }
                written => written,
            };
        }
        let current_members = self.sql(
            "SELECT value_key, member::text FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND group_id = $3 ORDER BY position",
        );
        let renumber = self.sql(
            "UPDATE scim_resources SET next_position = $4 WHERE tenant = $1 AND resource_type = $2 AND id = $3",
        );
        let drop_members = self.sql(
            "DELETE FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND group_id = $3",
        );
        let written = write_tx!(self, tx => {
            let updated = sqlx::query(&update)
                .bind(tenant)
                .bind(resource_type)
                .bind(&record.id)
                .bind(expected_version as i64)
                .bind(record.version as i64)
                .bind(doc.to_string())
                .bind(&cmp)
                .bind(rule.map(|_| rows.len() as i64))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            if updated.rows_affected() == 0 {
                let found: Option<i64> = sqlx::query_scalar(&exists)
                    .bind(tenant)
                    .bind(resource_type)
                    .bind(&record.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                Err(match found {
                    None => StoreError::NotFound(record.id.clone()),
                    Some(_) => StoreError::PreconditionFailed,
                })
            } else {
                let result = claim_unique!(self, tx, tenant, resource_type, &record.id, unique, true);
                if result.is_ok() && rule.is_some() {
                    // Members are rewritten only when they changed: a rename leaves
                    // the member rows alone.
                    let current: Vec<(String, String)> = sqlx::query_as(&current_members)
                        .bind(tenant)
                        .bind(resource_type)
                        .bind(&record.id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(backend)?;
                    if !same_members(&current, &rows) {
                        sqlx::query(&drop_members)
                            .bind(tenant)
                            .bind(resource_type)
                            .bind(&record.id)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                        insert_members!(self, tx, tenant, resource_type, &record.id, rows);
                        // New members go after the rewritten ones.
                        sqlx::query(&renumber)
                            .bind(tenant)
                            .bind(resource_type)
                            .bind(&record.id)
                            .bind(rows.len() as i64 + 1)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                    }
                }
                if result.is_ok() {
                    record_events!(self, tx, tenant, events);
                }
                result.map(|()| record.clone())
            }
        })?;
        self.announce(events);
        Ok(written)
    }
}

impl<C: Tenant + 'static> Store for SqlStore<C> {
    type Context = C;

    async fn create(
        &self,
        ctx: &C,
        resource_type: &str,
        record: Record,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> Result<Record, StoreError> {
        self.refuse_nul(|| {
            record.id.contains('\0')
                || has_nul(&record.resource)
                || unique.iter().any(|u| u.value.contains('\0'))
        })?;
        let schema = self.schema(resource_type)?;
        let rule = self.member_rule(&schema);
        let (doc, members) = match rule {
            Some(_) => {
                let (doc, members) = split_members(&record.resource, &self.members);
                (Cow::Owned(doc), members)
            }
            None => (Cow::Borrowed(&record.resource), Vec::new()),
        };
        let rows = member_rows(&members, rule.unwrap_or(false), 1);
        let cmp = comparison_document(&schema, &doc).to_string();
        let tenant = ctx.tenant();
        let insert: Cow<'_, str> = match self.dialect() {
            Dialect::Postgres => Cow::Borrowed(
                "INSERT INTO scim_resources (tenant, resource_type, id, id_key, version, member_count, next_position, resource, cmp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6 + 1, $7::jsonb, $8::jsonb)",
            ),
            Dialect::Sqlite => {
                let (mut columns, mut values) = (String::new(), String::new());
                for (attribute, column) in KEY_COLUMNS {
                    columns.push_str(&format!(", {column}"));
                    values.push_str(&format!(", json_extract(?8, '$.\"{attribute}\"')"));
                }
                Cow::Owned(format!(
                    "INSERT INTO scim_resources (tenant, resource_type, id, id_key, version, member_count, next_position, resource, cmp{columns}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6 + 1, ?7, ?8{values})"
                ))
            }
        };
        let one_call = rows.is_empty()
            && match &self.pool {
                Pool::Sqlite(_) => true,
                Pool::Postgres(_) => events.len() <= EVENT_CHUNK,
            };
        if one_call {
            // Nothing to read in between: the whole write is one script for the SQLite
            // leader, one statement on PostgreSQL, with the parameters `insert` takes.
            let head: [Arg; 8] = [
                tenant.into(),
                resource_type.into(),
                record.id.as_str().into(),
                record.id.to_lowercase().into(),
                (record.version as i64).into(),
                0i64.into(),
                doc.to_string().into(),
                cmp.into(),
            ];
            let id = record.id.clone();
            let taken = move || StoreError::Conflict(format!("id {id} is already in use"));
            return match &self.pool {
                Pool::Sqlite(pool) => {
                    let mut script = Script::new();
                    let insert_at = script.push(&insert, &head)?;
                    let claims = claim_script(
                        &mut script,
                        tenant,
                        resource_type,
                        &record.id,
                        unique,
                        false,
                    )?;
                    event_script(&mut script, tenant, events)?;
                    let distinct: Vec<UniqueValue> =
                        distinct_unique(unique).into_iter().cloned().collect();
                    let keep = move |answers: Vec<Done>, failed: Option<Failed>| match failed {
                        Some(f)
                            if f.statement == insert_at.start && f.error.is_unique_violation() =>
                        {
                            Err(taken())
                        }
                        Some(f) if !f.is_refusal() => Err(f.into_store_error()),
                        f => {
                            claims_held(&distinct, &answers, claims)?;
                            match f {
                                Some(_) => Err(refused_claim(&distinct)),
                                None => Ok(record),
                            }
                        }
                    };
                    let announce = self.announcer(events);
                    self.writers.run(pool, script, keep, announce).await
                }
                Pool::Postgres(pool) => {
                    let distinct = distinct_unique(unique);
                    let sql = format!(
                        "WITH written AS ({insert} RETURNING 1){} SELECT count(*) FROM written",
                        pg_claims_and_events(distinct.len(), events.len(), 9, false)
                    );
                    match pg_write(pool, &sql, &head, &distinct, &event_rows(events)?).await {
                        // The claims' violations are conflicts already: this is the id's.
                        Err(StoreError::Backend(source))
                            if source
                                .downcast_ref::<sqlx::Error>()
                                .is_some_and(is_unique_violation) =>
                        {
                            Err(taken())
                        }
                        Err(e) => Err(e),
                        Ok(_) => {
                            self.announce(events);
                            Ok(record)
                        }
                    }
                }
            };
        }
        let created = write_tx!(self, tx => {
            let inserted = sqlx::query(&insert)
                .bind(tenant)
                .bind(resource_type)
                .bind(&record.id)
                .bind(record.id.to_lowercase())
                .bind(record.version as i64)
                .bind(rows.len() as i64)
                .bind(doc.to_string())
                .bind(&cmp)
                .execute(&mut *tx)
                .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict(format!("id {} is already in use", record.id)))
                }
                Err(e) => Err(backend(e)),
                Ok(_) => {
                    let result = claim_unique!(self, tx, tenant, resource_type, &record.id, unique, false);
                    if result.is_ok() && !rows.is_empty() {
                        insert_members!(self, tx, tenant, resource_type, &record.id, rows);
                    }
                    if result.is_ok() {
                        record_events!(self, tx, tenant, events);
                    }
                    result.map(|()| record.clone())
                }
            }
        })?;
        self.announce(events);
        Ok(created)
    }

    async fn get(
        &self,
        ctx: &C,
        resource_type: &str,
        id: &str,
        projection: &Projection,
    ) -> Result<Record, StoreError> {
        if self.unstorable_id(id) {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        let schema = self.schema(resource_type)?;
        let with_members = self.member_rule(&schema).is_some() && projection.wants(&self.members);
        let select = self.sql(
            "SELECT version, resource::text FROM scim_resources WHERE tenant = $1 AND resource_type = $2 AND id = $3",
        );
        let members = self.sql(
            "SELECT member::text FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND group_id = $3 ORDER BY position",
        );
        let tenant = ctx.tenant();
        if !with_members {
            // One statement: no transaction of its own (two round trips fewer).
            let row: Option<(i64, String)> = on_pool!(&self.pool, p => {
                sqlx::query_as(&select)
                    .bind(tenant)
                    .bind(resource_type)
                    .bind(id)
                    .fetch_optional(p)
                    .await
            })
            .map_err(backend)?;
            let (version, text) = row.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            return self.stored_record(id, version, &text, None, projection);
        }
        read_tx!(self, tx => {
            let row = sqlx::query(&select)
                .bind(tenant)
                .bind(resource_type)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            let version: i64 = row.try_get(0).map_err(backend)?;
            let text: String = row.try_get(1).map_err(backend)?;
            let list: Vec<String> = sqlx::query_scalar(&members)
                .bind(tenant)
                .bind(resource_type)
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
            self.stored_record(id, version, &text, Some(&list), projection)
        })
    }

    async fn replace(
        &self,
        ctx: &C,
        resource_type: &str,
        record: Record,
        expected_version: u64,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> Result<Record, StoreError> {
        let write = Whole {
            record,
            expected_version,
            unique,
            events,
        };
        self.write_whole(ctx, resource_type, write, true).await
    }

    /// When the filter translates whole (no residual, no condition on members left
    /// to memory): the database evaluates it, in its own threads or process (an
    /// equality on `id` or `userName` is an index look-up; on an attribute without
    /// a key column, a search of the tenant's rows there), and only the rows that
    /// match come back.
    fn filters_itself(&self, resource_type: &str, filter: &Filter) -> bool {
        let Ok(schema) = self.schema(resource_type) else {
            return false;
        };
        let rule = self.member_rule(&schema);
        let members = rule.map(|case_exact| (self.members.as_str(), case_exact));
        let split = split_filter(Some(filter), members, &schema.core().id);
        !split.in_memory
            && split
                .pushed
                .as_ref()
                .is_none_or(|f| self.translation(&schema, f).residual.is_none())
    }

    fn kept_apart(&self, resource_type: &str) -> Option<&str> {
        let schema = self.registry.resource_type(resource_type)?;
        self.member_rule(&schema).map(|_| self.members.as_str())
    }

    async fn replace_except(
        &self,
        ctx: &C,
        resource_type: &str,
        record: Record,
        expected_version: u64,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> Result<Record, StoreError> {
        let write = Whole {
            record,
            expected_version,
            unique,
            events,
        };
        self.write_whole(ctx, resource_type, write, false).await
    }

    async fn delete(
        &self,
        ctx: &C,
        resource_type: &str,
        id: &str,
        expected_version: Option<u64>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        if self.unstorable_id(id) {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        let tenant = ctx.tenant();
        // Each resource type that keeps members, with its rule, to take `id` out of
        // its groups in the same transaction.
        let holders: Vec<(String, bool)> = self
            .registry
            .resource_types()
            .filter_map(|schema| Some((schema.name().to_owned(), self.member_rule(&schema)?)))
            .collect();
        let now = chrono::Utc::now();
        let (text, instant) = modified(now);
        // PostgreSQL: rows are locked before they are read, groups first (in id
        // order, as every writer of a group locks it before its members), so
        // concurrent writers queue instead of deadlocking, and the version checked
        // is the version deleted.
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let select = format!(
            "{}{lock}",
            self.sql("SELECT version FROM scim_resources WHERE tenant = $1 AND resource_type = $2 AND id = $3")
        );
        let holding = self.sql(
            "SELECT DISTINCT group_id FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND value_key = $3 ORDER BY group_id",
        );
        let remove = self
            .sql("DELETE FROM scim_resources WHERE tenant = $1 AND resource_type = $2 AND id = $3");
        let release = self
            .sql("DELETE FROM scim_unique WHERE tenant = $1 AND resource_type = $2 AND id = $3");
        let drop_members = self.sql(
            "DELETE FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND group_id = $3",
        );
        let leave = self.sql(
            "DELETE FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND value_key = $3 RETURNING group_id, value",
        );
        let bump = match self.dialect() {
            Dialect::Postgres => {
                "UPDATE scim_resources SET version = version + 1, member_count = member_count - 1, \
                 resource = jsonb_set(resource, '{meta,lastModified}', to_jsonb($4::text)), \
                 cmp = jsonb_set(cmp, '{meta,lastModified}', to_jsonb($5::text)) \
                 WHERE tenant = $1 AND resource_type = $2 AND id = $3 RETURNING version"
            }
            Dialect::Sqlite => {
                "UPDATE scim_resources SET version = version + 1, member_count = member_count - 1, \
                 resource = json_set(resource, '$.meta.lastModified', ?4), \
                 cmp = json_set(cmp, '$.meta.lastModified', ?5) \
                 WHERE tenant = ?1 AND resource_type = ?2 AND id = ?3 RETURNING version"
            }
        };
        let all_events = write_tx!(self, tx => {
            for (holder, case_exact) in &holders {
                let groups: Vec<String> = sqlx::query_scalar(&holding)
                    .bind(tenant)
                    .bind(holder)
                    .bind(member_key(id, *case_exact))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(backend)?;
                for group in groups {
                    sqlx::query(&select)
                        .bind(tenant)
                        .bind(holder)
                        .bind(&group)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
            }
            let found: Option<i64> = sqlx::query_scalar(&select)
                .bind(tenant)
                .bind(resource_type)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            match found {
                None => Err(StoreError::NotFound(id.to_owned())),
                Some(v) if expected_version.is_some_and(|e| e as i64 != v) => {
                    Err(StoreError::PreconditionFailed)
                }
                Some(_) => {
                    for sql in [&remove, &release, &drop_members] {
                        sqlx::query(sql)
                            .bind(tenant)
                            .bind(resource_type)
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                    }
                    // Each group it leaves reports the member it lost.
                    let mut all_events = events.to_vec();
                    for (holder, case_exact) in &holders {
                        let left: Vec<(String, String)> = sqlx::query_as(&leave)
                            .bind(tenant)
                            .bind(holder)
                            .bind(member_key(id, *case_exact))
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(backend)?;
                        for (group, value) in left {
                            let version: Option<i64> = sqlx::query_scalar(bump)
                                .bind(tenant)
                                .bind(holder)
                                .bind(&group)
                                .bind(&text)
                                .bind(&instant)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(backend)?;
                            // A member row whose group is gone reports nothing.
                            let Some(version) = version else { continue };
                            all_events.extend(Event::of_members(
                                holder,
                                &group,
                                version as u64,
                                now,
                                &self.members,
                                Vec::new(),
                                vec![value],
                            ));
                        }
                    }
                    record_events!(self, tx, tenant, &all_events);
                    Ok(all_events)
                }
            }
        })?;
        self.announce(&all_events);
        Ok(())
    }

    async fn list(
        &self,
        ctx: &C,
        resource_type: &str,
        query: &ListQuery<'_>,
    ) -> Result<Page, StoreError> {
        let ListPlan {
            select,
            exact,
            after,
            count_sql,
            params,
            member_keys,
            want_members,
        } = self.list_plan(query);
        self.refuse_nul(|| {
            params
                .iter()
                .any(|p| matches!(p, Param::Text(t) if t.contains('\0')))
                || member_keys.iter().any(|k| k.contains('\0'))
                || after.as_deref().is_some_and(|a| a.contains('\0'))
        })?;
        let tenant = ctx.tenant();
        // A look-up (`userName eq …` before a create): a first page that comes back
        // short of `count` is the whole listing, so its rows are the total (RFC 7644
        // §3.4.2: `totalResults`, the number of results the query matched). One
        // statement, its own snapshot, answers it: no COUNT, and no transaction to
        // hold the two in one snapshot. Tried on filtered, unsorted first pages only,
        // as look-ups are: a full page is selected again below with its count (in
        // one snapshot), and an unfiltered or sorted listing is usually a full page.
        // A page after a cursor position is counted too (its total counts the
        // matches before it).
        let look_up = query.filter.is_some()
            && query.sort.is_none()
            && query.start_index <= 1
            && after.as_deref().is_none_or(str::is_empty);
        if count_sql.is_some() && !want_members && look_up && query.count > 0 {
            // Kept prepared on SQLite, whose plans do not depend on the values bound
            // (the store keeps no samples of them: see `drop_samples`), in sqlx's
            // cache of each connection (the least recently used go); not on
            // PostgreSQL, which could move a statement it keeps to a generic plan.
            let keep = matches!(self.pool, Pool::Sqlite(_));
            let rows: Vec<(String, i64, String)> = on_pool!(&self.pool, pool => {
                let q = sqlx::query_as(&select).persistent(keep);
                bind_page!(q, &params, &member_keys, tenant, resource_type, &after)
                    .fetch_all(pool)
                    .await
            })
            .map_err(backend)?;
            if rows.len() < query.count {
                let mut records = Vec::with_capacity(rows.len());
                for (id, version, text) in rows {
                    let mut resource: Value =
                        serde_json::from_str(&text).map_err(StoreError::backend)?;
                    project(&mut resource, query.projection);
                    records.push(Record {
                        id,
                        version: version as u64,
                        resource,
                    });
                }
                return Ok(Page {
                    total_results: records.len(),
                    records,
                });
            }
        }
        let members_sql = self.sql(
            "SELECT member::text FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND group_id = $3 ORDER BY position",
        );
        read_tx!(self, tx => {
            let total = match &count_sql {
                Some(sql) => {
                    // Not kept prepared: each filter is planned for its own values
                    // (a generic plan may scan a tenant to find one userName), and
                    // one-off filter texts would crowd the statement cache.
                    let mut q = sqlx::query_scalar::<_, i64>(sql).persistent(false);
                    for p in &params {
                        q = bind_param!(q, p);
                    }
                    for k in &member_keys {
                        q = q.bind(k);
                    }
                    Some(
                        q.bind(tenant)
                            .bind(resource_type)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(backend)? as usize,
                    )
                }
                // Exact, but not counted: the caller knows the total.
                None if exact => Some(0),
                None => None,
            };
            let q = sqlx::query(&select).persistent(false);
            let rows = bind_page!(q, &params, &member_keys, tenant, resource_type, &after)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
            let mut records = Vec::with_capacity(rows.len());
            for row in rows {
                let id: String = row.try_get(0).map_err(backend)?;
                let version: i64 = row.try_get(1).map_err(backend)?;
                let text: String = row.try_get(2).map_err(backend)?;
                let mut resource: Value = serde_json::from_str(&text).map_err(StoreError::backend)?;
                if want_members {
                    let list: Vec<String> = sqlx::query_scalar(&members_sql)
                        .bind(tenant)
                        .bind(resource_type)
                        .bind(&id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(backend)?;
                    attach_members(&mut resource, &self.members, &list)?;
                }
                records.push(Record { id, version: version as u64, resource });
            }
            let mut page = match total {
                Some(total) => Page { total_results: total, records },
                // The SQL selected a superset: the whole query again, in memory.
                None => apply_query(records.iter(), query),
            };
            for r in &mut page.records {
                project(&mut r.resource, query.projection);
            }
            Ok(page)
        })
    }

    async fn update_members(
        &self,
        ctx: &C,
        resource_type: &str,
        id: &str,
        delta: &MemberDelta,
        expected_version: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        if self.unstorable_id(id) {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        self.refuse_nul(|| {
            delta.changes.iter().any(|c| match c {
                MemberChange::Add(v) => has_nul(v),
                MemberChange::Remove(id) => id.contains('\0'),
            })
        })?;
        let schema = self.schema(resource_type)?;
        if self.member_rule(&schema).is_none()
            || !delta.attribute.eq_ignore_ascii_case(&self.members)
        {
            return Ok(None);
        }
        let case_exact = delta.case_exact;
        let tenant = ctx.tenant();
        let dialect = self.dialect();
        let lock = match dialect {
            Dialect::Postgres => {
                "SELECT version, member_count, next_position FROM scim_resources \
                 WHERE tenant = $1 AND resource_type = $2 AND id = $3 FOR UPDATE"
            }
            Dialect::Sqlite => {
                "SELECT version, member_count, next_position FROM scim_resources \
                 WHERE tenant = ?1 AND resource_type = ?2 AND id = ?3"
            }
        };
        let one = self.sql(
            "SELECT member::text FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND group_id = $3 AND value_key = $4",
        );
        let insert = self.sql(
            "INSERT INTO scim_members (tenant, resource_type, group_id, value_key, value, position, member) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
        );
        let update = self.sql(
            "UPDATE scim_members SET member = $5::jsonb WHERE tenant = $1 AND resource_type = $2 AND group_id = $3 AND value_key = $4",
        );
        let remove = self.sql(
            "DELETE FROM scim_members WHERE tenant = $1 AND resource_type = $2 AND group_id = $3 AND value_key = $4",
        );
        // An added member's row, held until the delta commits: a concurrent delete of
        // it waits, or has won and the member is refused.
        let member_row = format!(
            "SELECT id FROM scim_resources WHERE tenant = {} AND resource_type = {} AND {}{}",
            ph(dialect, 1),
            ph(dialect, 2),
            id_key_in(dialect, &ph(dialect, 3)),
            match dialect {
                Dialect::Postgres => " FOR SHARE",
                Dialect::Sqlite => "",
            }
        );
        let (text, instant) = modified(delta.modified);
        let bump = match dialect {
            Dialect::Postgres => {
                "UPDATE scim_resources SET version = version + 1, member_count = $4, next_position = $7, \
                 resource = jsonb_set(resource, '{meta,lastModified}', to_jsonb($5::text)), \
                 cmp = jsonb_set(cmp, '{meta,lastModified}', to_jsonb($6::text)) \
                 WHERE tenant = $1 AND resource_type = $2 AND id = $3"
            }
            Dialect::Sqlite => {
                "UPDATE scim_resources SET version = version + 1, member_count = ?4, next_position = ?7, \
                 resource = json_set(resource, '$.meta.lastModified', ?5), \
                 cmp = json_set(cmp, '$.meta.lastModified', ?6) \
                 WHERE tenant = ?1 AND resource_type = ?2 AND id = ?3"
            }
        };
        let (version, events) = write_tx!(self, tx => {
            let row = sqlx::query(lock)
                .bind(tenant)
                .bind(resource_type)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            match row {
                None => Err(StoreError::NotFound(id.to_owned())),
                Some(row) => {
                    let version: i64 = row.try_get(0).map_err(backend)?;
                    let count: i64 = row.try_get(1).map_err(backend)?;
                    let next_position: i64 = row.try_get(2).map_err(backend)?;
                    if expected_version.is_some_and(|e| e as i64 != version) {
                        Err(StoreError::PreconditionFailed)
                    } else {
                        // The members the delta touches, as they are now.
                        let mut before: HashMap<String, Option<Value>> = HashMap::new();
                        for change in &delta.changes {
                            let Some(key) = change_key(change, case_exact) else {
                                continue;
                            };
                            if before.contains_key(&key) {
                                continue;
                            }
                            let found: Option<String> = sqlx::query_scalar(&one)
                                .bind(tenant)
                                .bind(resource_type)
                                .bind(id)
                                .bind(&key)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(backend)?;
                            let found = match found {
                                Some(t) => Some(serde_json::from_str::<Value>(&t).map_err(StoreError::backend)?),
                                None => None,
                            };
                            before.insert(key, found);
                        }
                        let after = apply_changes(&before, delta, case_exact);
                        let added = after.values().filter(|v| v.is_some()).count() as i64
                            - before.values().filter(|v| v.is_some()).count() as i64;
                        let new_count = count + added;
                        let mut missing = Vec::new();
                        for (key, member) in &after {
                            let Some(member) = member else { continue };
                            if delta.member_types.is_empty() || before.get(key).is_some_and(Option::is_some) {
                                continue;
                            }
                            let value = member.get("value").and_then(Value::as_str).unwrap_or_default();
                            let mut found = false;
                            for t in &delta.member_types {
                                let ids: Vec<String> = sqlx::query_scalar(&member_row)
                                    .bind(tenant)
                                    .bind(t)
                                    .bind(value.to_lowercase())
                                    .fetch_all(&mut *tx)
                                    .await
                                    .map_err(backend)?;
                                if ids.iter().any(|i| !case_exact || i == value) {
                                    found = true;
                                    break;
                                }
                            }
                            if !found {
                                missing.push(value.to_owned());
                            }
                        }
                        if !missing.is_empty() {
                            missing.sort();
                            Err(StoreError::Invalid(format!(
                                "'{}' names resources that do not exist (deleted meanwhile?): {}",
                                delta.attribute,
                                missing.join(", ")
                            )))
                        } else if new_count > i64::try_from(delta.max_members).unwrap_or(i64::MAX) {
                            Err(StoreError::Invalid(format!(
                                "'{}' would have {new_count} values, more than the limit of {} (max_members)",
                                delta.attribute, delta.max_members
                            )))
                        } else if after == before {
                            Ok((Some(version as u64), Vec::new()))
                        } else {
                            let mut next = next_position;
                            // Writes in request order, so new members keep it.
                            let mut done = HashSet::new();
                            for change in &delta.changes {
                                let Some(key) = change_key(change, case_exact) else {
                                    continue;
                                };
                                if !done.insert(key.clone()) {
                                    continue;
                                }
                                let (old, new) = (&before[&key], &after[&key]);
                                match (old, new) {
                                    (None, Some(member)) => {
                                        let position = next;
                                        next += 1;
                                        let value = member.get("value").and_then(Value::as_str).unwrap_or_default();
                                        sqlx::query(&insert)
                                            .bind(tenant)
                                            .bind(resource_type)
                                            .bind(id)
                                            .bind(&key)
                                            .bind(value)
                                            .bind(position)
                                            .bind(member.to_string())
                                            .execute(&mut *tx)
                                            .await
                                            .map_err(backend)?;
                                    }
                                    (Some(_), None) => {
                                        sqlx::query(&remove)
                                            .bind(tenant)
                                            .bind(resource_type)
                                            .bind(id)
                                            .bind(&key)
                                            .execute(&mut *tx)
                                            .await
                                            .map_err(backend)?;
                                    }
                                    (Some(a), Some(b)) if a != b => {
                                        sqlx::query(&update)
                                            .bind(tenant)
                                            .bind(resource_type)
                                            .bind(id)
                                            .bind(&key)
                                            .bind(b.to_string())
                                            .execute(&mut *tx)
                                            .await
                                            .map_err(backend)?;
                                    }
                                    _ => {}
                                }
                            }
                            sqlx::query(bump)
                                .bind(tenant)
                                .bind(resource_type)
                                .bind(id)
                                .bind(new_count)
                                .bind(&text)
                                .bind(&instant)
                                .bind(next)
                                .execute(&mut *tx)
                                .await
                                .map_err(backend)?;
                            let events = member_events(delta, &before, &after, id, resource_type, version as u64 + 1);
                            record_events!(self, tx, tenant, &events);
                            Ok((Some(version as u64 + 1), events))
                        }
                    }
                }
            }
        })?;
        self.announce(&events);
        Ok(version)
    }

    async fn existing_ids(
        &self,
        ctx: &C,
        resource_type: &str,
        ids: &[&str],
        case_exact: bool,
    ) -> Result<Option<Vec<String>>, StoreError> {
        // An id no row can hold exists nowhere.
        let ids: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !self.unstorable_id(id))
            .collect();
        let ids = ids.as_slice();
        let tenant = ctx.tenant();
        let dialect = self.dialect();
        let mut found_exact = HashSet::new();
        let mut found_folded = HashSet::new();
        for chunk in ids.chunks(MEMBER_CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|id| id.to_lowercase()).collect();
            let list = (0..chunk.len())
                .map(|i| ph(dialect, i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT id, id_key FROM scim_resources WHERE tenant = {} AND resource_type = {} AND {}",
                ph(dialect, 1),
                ph(dialect, 2),
                id_key_in(dialect, &list)
            );
            let rows: Vec<(String, String)> = match &self.pool {
                Pool::Postgres(pool) => {
                    let mut q = sqlx::query_as(&sql).bind(tenant).bind(resource_type);
                    for k in &keys {
                        q = q.bind(k);
                    }
                    q.fetch_all(pool).await.map_err(backend)?
                }
                Pool::Sqlite(pool) => {
                    let mut q = sqlx::query_as(&sql).bind(tenant).bind(resource_type);
                    for k in &keys {
                        q = q.bind(k);
                    }
                    q.fetch_all(pool).await.map_err(backend)?
                }
            };
            for (id, key) in rows {
                found_exact.insert(id);
                found_folded.insert(key);
            }
        }
        Ok(Some(
            ids.iter()
                .filter(|id| {
                    found_exact.contains(**id)
                        || (!case_exact && found_folded.contains(&id.to_lowercase()))
                })
                .map(|id| (*id).to_owned())
                .collect(),
        ))
    }

    async fn memberships(
        &self,
        ctx: &C,
        resource_type: &str,
        attribute: &str,
        member_ids: &[&str],
    ) -> Result<Option<Vec<Membership>>, StoreError> {
        let member_ids: Vec<&str> = member_ids
            .iter()
            .copied()
            .filter(|id| !self.unstorable_id(id))
            .collect();
        let member_ids = member_ids.as_slice();
        let schema = self.schema(resource_type)?;
        let Some(case_exact) = self.member_rule(&schema) else {
            return Ok(None);
        };
        if !attribute.eq_ignore_ascii_case(&self.members) {
            return Ok(None);
        }
        let tenant = ctx.tenant();
        let dialect = self.dialect();
        let display = match dialect {
            Dialect::Postgres => "r.resource ->> 'displayName'",
            Dialect::Sqlite => "json_extract(r.resource, '$.displayName')",
        };
        let mut out = Vec::new();
        for chunk in member_ids.chunks(MEMBER_CHUNK) {
            // Ids compared ignoring case (the service keeps what caseExact allows).
            let keys: Vec<String> = chunk.iter().map(|id| member_key(id, case_exact)).collect();
            let list = (0..keys.len())
                .map(|i| ph(dialect, i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT m.group_id, {display}, m.value FROM scim_members m JOIN scim_resources r \
                 ON r.tenant = m.tenant AND r.resource_type = m.resource_type AND r.id = m.group_id \
                 WHERE m.tenant = {} AND m.resource_type = {} AND m.value_key IN ({list}) \
                 ORDER BY m.group_id, m.position",
                ph(dialect, 1),
                ph(dialect, 2)
            );
            let rows: Vec<(String, Option<String>, String)> = match &self.pool {
                Pool::Postgres(pool) => {
                    let mut q = sqlx::query_as(&sql).bind(tenant).bind(resource_type);
                    for k in &keys {
                        q = q.bind(k);
                    }
                    q.fetch_all(pool).await.map_err(backend)?
                }
                Pool::Sqlite(pool) => {
                    let mut q = sqlx::query_as(&sql).bind(tenant).bind(resource_type);
                    for k in &keys {
                        q = q.bind(k);
                    }
                    q.fetch_all(pool).await.map_err(backend)?
                }
            };
            out.extend(
                rows.into_iter()
                    .map(|(group, display_name, member)| Membership {
                        group,
                        display_name,
                        member,
                    }),
            );
        }
        Ok(Some(out))
    }
}

/// The SQL of a list: the page's `SELECT`, the `COUNT(*)` when the SQL answers the
/// whole query, and what they bind (the translation's parameters, then member
/// keys, then tenant and resource type).
struct ListPlan {
    select: String,
    /// Whether the SQL answers the whole query (else the rows are a superset that
    /// the query filters again in memory).
    exact: bool,
    /// The keyset position the select starts after, bound last.
    after: Option<String>,
    count_sql: Option<String>,
    params: Params,
    member_keys: Vec<String>,
    want_members: bool,
}

impl<C> SqlStore<C> {
    /// The resource type's translator, on the store's schema: the one the
    /// comparison documents were written with, which the SQL (filter and order)
    /// reads.
    fn translator(&self, schema: &ResourceSchema<'_>) -> Option<&Translator> {
        self.translators
            .iter()
            .find(|t| t.schema().name() == schema.name())
    }

    /// `filter` translated for resources of `schema` (see [`Self::translator`]).
    fn translation(&self, schema: &ResourceSchema<'_>, filter: &Filter) -> crate::Translation {
        match self.translator(schema) {
            Some(translator) => translator.translate(filter),
            None => translate(filter, schema, "cmp", self.dialect()),
        }
    }

    fn list_plan(&self, query: &ListQuery<'_>) -> ListPlan {
        let schema = &query.schema;
        let dialect = self.dialect();
        let rule = self.member_rule(schema);
        let members_attr = rule.map(|_| self.members.as_str());
        // What names the members is answered in memory (they are not in the
        // comparison document); the rest in SQL.
        let split = split_filter(query.filter, members_attr.zip(rule), &schema.core().id);
        let t = match &split.pushed {
            Some(f) => self.translation(schema, f),
            None => crate::Translation {
                sql: match dialect {
                    Dialect::Sqlite => "1".into(),
                    Dialect::Postgres => "TRUE".into(),
                },
                params: Params::new(),
                residual: None,
            },
        };
        let sort_in_memory = query
            .sort
            .is_some_and(|s| members_attr.is_some_and(|m| s.by.name().eq_ignore_ascii_case(m)));
        let exact = t.residual.is_none() && !split.in_memory && !sort_in_memory;
        // Member conditions: an index look-up in the member table each.
        let mut member_keys: Vec<String> = Vec::new();
        let mut conditions = t.sql.to_string();
        for condition in &split.members {
            match condition {
                None => conditions.push_str(" AND member_count > 0"),
                Some(keys) if keys.is_empty() => conditions.push_str(" AND 1 = 0"),
                Some(keys) => {
                    let list = keys
                        .iter()
                        .enumerate()
                        .map(|(i, _)| ph(dialect, t.params.len() + member_keys.len() + i + 1))
                        .collect::<Vec<_>>()
                        .join(", ");
                    conditions.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM scim_members m WHERE m.tenant = scim_resources.tenant \
                         AND m.resource_type = scim_resources.resource_type AND m.group_id = scim_resources.id \
                         AND m.value_key IN ({list}))"
                    ));
                    member_keys.extend(keys.iter().cloned());
                }
            }
        }
        let n = t.params.len() + member_keys.len();
        let scope = format!(
            "tenant = {} AND resource_type = {} AND ({})",
            ph(dialect, n + 1),
            ph(dialect, n + 2),
            conditions
        );
        let order = match (query.sort, sort_in_memory) {
            (Some(sort), false) => match self.translator(schema) {
                Some(translator) => translator.order_by(sort, "id").sql,
                None => order_by(sort, schema, "cmp", "id", dialect).sql,
            },
            _ => match dialect {
                Dialect::Sqlite => "id ASC".to_owned(),
                Dialect::Postgres => "id COLLATE \"C\" ASC".to_owned(),
            },
        };
        let want_members = rule.is_some() && (!exact || query.projection.wants(&self.members));
        let (limit, count_sql) = if exact {
            (
                format!(
                    " LIMIT {} OFFSET {}",
                    query.count,
                    query.start_index.saturating_sub(1)
                ),
                // Counted only when asked: a later cursor page is told its total.
                query
                    .count_total
                    .then(|| format!("SELECT COUNT(*) FROM scim_resources WHERE {scope}")),
            )
        } else {
            (String::new(), None)
        };
        // Cursor pagination: a range on the primary key's order, not an offset.
        let after = query.after.filter(|_| query.sort.is_none());
        let keyset = match (after, dialect) {
            (None, _) => String::new(),
            (Some(_), Dialect::Sqlite) => format!(" AND id > {}", ph(dialect, n + 3)),
            (Some(_), Dialect::Postgres) => {
                format!(" AND id COLLATE \"C\" > {}", ph(dialect, n + 3))
            }
        };
        let select = match dialect {
            Dialect::Sqlite => format!(
                "SELECT id, version, resource FROM scim_resources WHERE {scope}{keyset} ORDER BY {order}{limit}"
            ),
            // A page after the first (`startIndex` > 1, RFC 7644 §3.4.2.4) picks its
            // ids first and reads only their rows: the rows it skips are counted in
            // the primary key (an index-only scan), not read, and their documents
            // not converted. Skipping 999,900 users took 1.5–4 s read whole, a tenth
            // of that this way. (SQLite's table is its primary key: nothing to gain.)
            Dialect::Postgres if exact && query.start_index > 1 => format!(
                "SELECT id, version, resource::text FROM scim_resources \
                 WHERE tenant = {} AND resource_type = {} AND id IN \
                 (SELECT id FROM scim_resources WHERE {scope}{keyset} ORDER BY {order}{limit}) \
                 ORDER BY {order}",
                ph(dialect, n + 1),
                ph(dialect, n + 2),
            ),
            Dialect::Postgres => format!(
                "SELECT id, version, resource::text FROM scim_resources WHERE {scope}{keyset} ORDER BY {order}{limit}"
            ),
        };
        ListPlan {
            select,
            exact,
            after: after.map(str::to_owned),
            count_sql,
            params: t.params,
            member_keys,
            want_members,
        }
    }

    /// The database's plan for the page query of `query` (`EXPLAIN` in PostgreSQL,
    /// `EXPLAIN QUERY PLAN` in SQLite), one line per step: to see which index a
    /// filter uses.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn explain(
        &self,
        ctx: &C,
        resource_type: &str,
        query: &ListQuery<'_>,
    ) -> Result<String, StoreError>
    where
        C: Tenant,
    {
        let plan = self.list_plan(query);
        let tenant = ctx.tenant();
        macro_rules! run {
            ($pool:expr, $prefix:expr, $column:expr) => {{
                let sql = format!("{}{}", $prefix, plan.select);
                let q = sqlx::query(&sql).persistent(false);
                let q = bind_page!(
                    q,
                    &plan.params,
                    &plan.member_keys,
                    tenant,
                    resource_type,
                    &plan.after
                );
                let rows = q.fetch_all($pool).await.map_err(backend)?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>($column).map_err(backend))
                    .collect::<Result<Vec<_>, _>>()?
                    .join("\n")
            }};
        }
        Ok(match &self.pool {
            Pool::Postgres(pool) => run!(pool, "EXPLAIN ", 0),
            Pool::Sqlite(pool) => run!(pool, "EXPLAIN QUERY PLAN ", 3),
        })
    }
}

/// The key a member change names.
fn change_key(change: &MemberChange, case_exact: bool) -> Option<String> {
    match change {
        MemberChange::Add(m) => m
            .get("value")
            .and_then(Value::as_str)
            .map(|id| member_key(id, case_exact)),
        MemberChange::Remove(id) => Some(member_key(id, case_exact)),
    }
}

/// The touched members after the changes, in order: an add merges into a member
/// that is there (its sub-attributes win), a remove takes it out.
fn apply_changes(
    before: &HashMap<String, Option<Value>>,
    delta: &MemberDelta,
    case_exact: bool,
) -> HashMap<String, Option<Value>> {
    let mut now = before.clone();
    for change in &delta.changes {
        let Some(key) = change_key(change, case_exact) else {
            continue;
        };
        match change {
            MemberChange::Add(member) => {
                let merged = match now.get(&key).cloned().flatten() {
                    Some(Value::Object(mut old)) => {
                        if let Value::Object(new) = member {
                            old.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                        }
                        Value::Object(old)
                    }
                    _ => member.clone(),
                };
                now.insert(key, Some(merged));
            }
            MemberChange::Remove(_) => {
                now.insert(key, None);
            }
        }
    }
    now
}

/// Whether the stored member rows (key, JSON) are the new list's rows, in order.
fn same_members(current: &[(String, String)], rows: &[(String, String, i64, String)]) -> bool {
    current.len() == rows.len()
        && current
            .iter()
            .zip(rows)
            .all(|((key, json), (new_key, _, _, new_json))| {
                key == new_key
                    && (json == new_json
                        || serde_json::from_str::<Value>(json).ok()
                            == serde_json::from_str::<Value>(new_json).ok())
            })
}

/// Puts the member list back into a resource (left out when empty, as stored).
fn attach_members(
    resource: &mut Value,
    attribute: &str,
    rows: &[String],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let list = rows
        .iter()
        .map(|t| serde_json::from_str::<Value>(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::backend)?;
    if let Value::Object(map) = resource {
        map.insert(attribute.to_owned(), Value::Array(list));
    } else {
        let mut map = Map::new();
        map.insert(attribute.to_owned(), Value::Array(list));
        *resource = Value::Object(map);
    }
    Ok(())
}

/// How a filter's conjuncts are answered: the part for the comparison document,
/// conditions on the member table, and whether some are left to memory.
struct Split {
    pushed: Option<Filter>,
    /// Each condition on the member table: the member keys any of which a group must
    /// list, or `None` for "has a member".
    members: Vec<Option<Vec<String>>>,
    in_memory: bool,
}

/// Splits the filter's conjuncts: those naming the member attribute (which the
/// comparison document leaves out) become member-table conditions when they are
/// `members[value eq "id"]`, `members.value eq "id"` (or several joined by `or`) or
/// `members pr`, and are left to memory otherwise.
fn split_filter(filter: Option<&Filter>, members: Option<(&str, bool)>, core: &str) -> Split {
    let mut split = Split {
        pushed: None,
        members: Vec::new(),
        in_memory: false,
    };
    let Some(filter) = filter else {
        return split;
    };
    let Some((members, case_exact)) = members else {
        split.pushed = Some(filter.clone());
        return split;
    };
    let parts: Vec<&Filter> = match filter {
        Filter::And(parts) => parts.iter().collect(),
        f => vec![f],
    };
    let mut sql = Vec::new();
    for part in parts {
        if !mentions(part, members, core) {
            sql.push(part.clone());
        } else if let Some(condition) = member_condition(part, members, core, case_exact) {
            split.members.push(condition);
        } else {
            split.in_memory = true;
        }
    }
    split.pushed = match sql.len() {
        0 => None,
        1 => sql.pop(),
        _ => Some(Filter::And(sql)),
    };
    split
}

/// The member-table condition of `f`, for the shapes identity providers send.
fn member_condition(
    f: &Filter,
    members: &str,
    core: &str,
    case_exact: bool,
) -> Option<Option<Vec<String>>> {
    let names_members = |p: &scimkit::path::AttrPath| {
        p.name().eq_ignore_ascii_case(members)
            && p.schema().is_none_or(|s| s.eq_ignore_ascii_case(core))
    };
    let is_value = |p: &scimkit::path::AttrPath| {
        p.name().eq_ignore_ascii_case("value") && p.sub_attr().is_none() && p.schema().is_none()
    };
    match f {
        Filter::Present(p)
            if names_members(p) && p.sub_attr().is_none_or(|s| s.eq_ignore_ascii_case("value")) =>
        {
            Some(None)
        }
        Filter::Compare(p, CompareOp::Eq, CompValue::String(id))
            if names_members(p) && p.sub_attr().is_none_or(|s| s.eq_ignore_ascii_case("value")) =>
        {
            Some(Some(vec![member_key(id, case_exact)]))
        }
        Filter::ValuePath(p, inner) if names_members(p) && p.sub_attr().is_none() => {
            match inner.as_ref() {
                Filter::Compare(v, CompareOp::Eq, CompValue::String(id)) if is_value(v) => {
                    Some(Some(vec![member_key(id, case_exact)]))
                }
                _ => None,
            }
        }
        Filter::Or(parts) => {
            let mut keys = Vec::new();
            for part in parts {
                keys.extend(member_condition(part, members, core, case_exact)??);
            }
            Some(Some(keys))
        }
        _ => None,
    }
}

/// Whether `f` names the core attribute `name` anywhere.
fn mentions(f: &Filter, name: &str, core: &str) -> bool {
    match f {
        Filter::Compare(p, _, _) | Filter::Present(p) | Filter::ValuePath(p, _) => {
            p.name().eq_ignore_ascii_case(name)
                && p.schema().is_none_or(|s| s.eq_ignore_ascii_case(core))
        }
        Filter::And(parts) | Filter::Or(parts) => parts.iter().any(|p| mentions(p, name, core)),
        Filter::Not(inner) => mentions(inner, name, core),
    }
}
