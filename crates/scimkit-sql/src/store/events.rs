//! The outbox's read side: [`EventLog`] for [`SqlStore`], a waiter that wakes when
//! events commit, and consumer leases for running one deliverer among instances.
//!
//! Events are written by the store's writes, in their transactions (see
//! `record_events!`); here they are read by named consumers, each with its
//! acknowledged sequence in `scim_event_consumers`. On PostgreSQL the readers also
//! number the events committed since the last read (see `number_events`), so that
//! writers never wait for one another to number theirs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use scimkit::events::{Event, EventLog, StoredEvent};
use scimkit::store::StoreError;
use sqlx::postgres::PgListener;

use super::{Pool, SqlStore, Tenant, backend};
use crate::Dialect;

/// The channel PostgreSQL notifies when events commit.
const CHANNEL: &str = "scim_events";

/// The longest pause between two attempts to notify when PostgreSQL cannot be
/// reached.
const NOTIFY_RETRY_MAX: Duration = Duration::from_secs(1);

/// The least time between two notifications of one process: under a stream of
/// writes, one notification wakes the consumers for every commit of that time.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);

/// On PostgreSQL, spawns the task that wakes every instance's listening consumers
/// after this process commits events: one `pg_notify` after each change of
/// `commits` (the store's count of commits of events), all the commits made while
/// one notification was on its way, or in the [`NOTIFY_INTERVAL`] after it, folded
/// into the next. It ends when the store and all its clones are gone, or at its
/// next notification after the pool was closed.
///
/// The notification is not part of the writing transaction: PostgreSQL serializes
/// the commits of the transactions that notify (a database-wide lock, held from
/// the notification until the commit is durable), so writers of different resources
/// would wait for each other's disk flushes. Sent after the commit, it is missed
/// when the process stops between a commit and its notification, or when the caller
/// of a write other than a PATCH or PUT (whose runner announces for it) goes away
/// at that moment; waiting consumers then read on their next timeout, as
/// [`EventWaiter::wait`] documents.
pub(super) fn notify_commits(pool: sqlx::PgPool, mut commits: tokio::sync::watch::Receiver<u64>) {
    tokio::spawn(async move {
        // `changed` marks the count seen: commits made from here on call again.
        while commits.changed().await.is_ok() {
            let mut pause = Duration::from_millis(10);
            loop {
                let sent = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(CHANNEL)
                    .execute(&pool)
                    .await;
                if pool.is_closed() || commits.has_changed().is_err() {
                    return;
                }
                if sent.is_ok() {
                    tokio::time::sleep(NOTIFY_INTERVAL).await;
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(NOTIFY_RETRY_MAX);
            }
        }
    });
}

/// How many events one reader numbers at most (see `SqlStore::number_events`).
const NUMBERED_AT_ONCE: u64 = 10_000;

/// How many rounds of numbering a prune runs at most before it deletes: a backlog
/// larger than this many times [`NUMBERED_AT_ONCE`] is numbered over several prunes.
const PRUNE_NUMBERING_ROUNDS: usize = 100;

impl<C: Tenant + 'static> EventLog for SqlStore<C> {
    type Tenant = String;

    async fn read_events(
        &self,
        consumer: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent<String>>, StoreError> {
        self.read_events_after(consumer, 0, limit).await
    }

    async fn acknowledge_events(&self, consumer: &str, sequence: u64) -> Result<(), StoreError> {
        let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
        let sql = match self.dialect() {
            Dialect::Postgres => {
                "INSERT INTO scim_event_consumers (name, acknowledged) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE \
                 SET acknowledged = GREATEST(scim_event_consumers.acknowledged, excluded.acknowledged)"
            }
            Dialect::Sqlite => {
                "INSERT INTO scim_event_consumers (name, acknowledged) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE \
                 SET acknowledged = MAX(scim_event_consumers.acknowledged, excluded.acknowledged)"
            }
        };
        self.execute(
            sql,
            |q| q.bind(consumer).bind(sequence),
            |q| q.bind(consumer).bind(sequence),
        )
        .await
        .map(|_| ())
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // Events nobody read yet are numbered first, so that old ones can go even
        // when no consumer reads them.
        for _ in 0..PRUNE_NUMBERING_ROUNDS {
            if self.number_events().await? < NUMBERED_AT_ONCE {
                break;
            }
        }
        let sql = self.sql(
            "DELETE FROM scim_events WHERE time_ms < $1 AND sequence > 0 AND sequence <= \
             COALESCE((SELECT MIN(acknowledged) FROM scim_event_consumers), 9223372036854775807)",
        );
        let ms = before.timestamp_millis();
        self.execute(&sql, |q| q.bind(ms), |q| q.bind(ms)).await
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;
type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl<C: Tenant + 'static> SqlStore<C> {
    /// Runs one writing statement, binding through `pg` or `sqlite`; returns the
    /// rows it affected. On SQLite it queues with the store's other writers and
    /// takes the write lock up front, as every write does.
    async fn execute<'q>(
        &self,
        sql: &'q str,
        pg: impl FnOnce(PgQuery<'q>) -> PgQuery<'q>,
        sqlite: impl FnOnce(SqliteQuery<'q>) -> SqliteQuery<'q>,
    ) -> Result<u64, StoreError> {
        match &self.pool {
            Pool::Postgres(p) => pg(sqlx::query(sql))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
                .map_err(backend),
            Pool::Sqlite(p) => {
                let mut turn = self.writers.turn(p).await?;
                let mut tx = turn.savepoint().await?;
                let done = match sqlite(sqlx::query(sql)).execute(&mut *tx).await {
                    Ok(done) => tx.commit().await.map(|()| done.rows_affected()),
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                };
                match done {
                    Ok(affected) => turn.finish().await.map(|()| affected),
                    Err(e) => {
                        turn.abandon().await;
                        Err(backend(e))
                    }
                }
            }
        }
    }

    /// Like [`EventLog::read_events`], but after `after` when that is further than
    /// what `consumer` acknowledged: for a consumer that acknowledges now and then
    /// rather than after every batch, and reads on from what it handled meanwhile.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn read_events_after(
        &self,
        consumer: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent<String>>, StoreError> {
        let acknowledged = self.register(consumer).await?;
        self.number_events().await?;
        let from = acknowledged.max(i64::try_from(after).unwrap_or(i64::MAX));
        let sql = self.sql(
            "SELECT sequence, tenant, event::text FROM scim_events WHERE sequence > $1 \
             ORDER BY sequence LIMIT $2",
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, String)> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(from).bind(limit).fetch_all(p).await
        })
        .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        for (sequence, tenant, text) in rows {
            let event: Event = serde_json::from_str(&text).map_err(StoreError::backend)?;
            out.push(StoredEvent {
                sequence: u64::try_from(sequence).unwrap_or_default(),
                tenant,
                event,
            });
        }
        Ok(out)
    }

    /// On PostgreSQL, numbers the committed events still under their placeholders
    /// (see migration 4), at most [`NUMBERED_AT_ONCE`] of them, in the order they
    /// were written, after the last sequence given. It holds the head row, so
    /// readers of several instances number in turn; each statement of its
    /// transaction (READ COMMITTED) sees what the previous reader committed. An
    /// event is numbered only once committed, and later than every number given
    /// before, so a consumer reading on from its last sequence misses none; a write
    /// of one resource waits for the previous write of it to commit before it writes
    /// its event, so one resource's events keep their order.
    /// Returns how many it numbered.
    async fn number_events(&self) -> Result<u64, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(0);
        };
        let pending: Option<i64> =
            sqlx::query_scalar("SELECT sequence FROM scim_events WHERE sequence < 0 LIMIT 1")
                .fetch_optional(pool)
                .await
                .map_err(backend)?;
        if pending.is_none() {
            return Ok(0);
        }
        let mut tx = pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(backend)?;
        sqlx::query("SELECT last FROM scim_event_head FOR UPDATE")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Placeholders are minus the write order: the highest came first.
        let numbered = sqlx::query(
            "WITH numbered AS ( \
                 SELECT sequence AS placeholder, \
                        row_number() OVER (ORDER BY sequence DESC) AS n \
                 FROM (SELECT sequence FROM scim_events WHERE sequence < 0 \
                       ORDER BY sequence DESC LIMIT $1) AS pending \
             ), head AS ( \
                 UPDATE scim_event_head SET last = last + (SELECT count(*) FROM numbered) \
                 RETURNING last \
             ) \
             UPDATE scim_events AS e \
             SET sequence = head.last - (SELECT count(*) FROM numbered) + numbered.n \
             FROM numbered, head WHERE e.sequence = numbered.placeholder",
        )
        .bind(NUMBERED_AT_ONCE as i64)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(numbered.rows_affected())
    }

    /// Makes `consumer` known, at the oldest event kept, if it is not; returns the
    /// sequence it acknowledged.
    async fn register(&self, consumer: &str) -> Result<i64, StoreError> {
        if let Some(acknowledged) = self.acknowledged(consumer).await? {
            return Ok(acknowledged);
        }
        let insert = self.sql(
            "INSERT INTO scim_event_consumers (name, acknowledged) VALUES ($1, 0) \
             ON CONFLICT (name) DO NOTHING",
        );
        self.execute(&insert, |q| q.bind(consumer), |q| q.bind(consumer))
            .await?;
        // Another instance may have registered it, and acknowledged, meanwhile.
        Ok(self.acknowledged(consumer).await?.unwrap_or(0))
    }

    /// The sequence `consumer` acknowledged, if it is known.
    async fn acknowledged(&self, consumer: &str) -> Result<Option<i64>, StoreError> {
        let select = self.sql("SELECT acknowledged FROM scim_event_consumers WHERE name = $1");
        on_pool!(&self.pool, p => {
            sqlx::query_scalar(&select).bind(consumer).fetch_optional(p).await
        })
        .map_err(backend)
    }

    /// A waiter that wakes when events commit: on PostgreSQL through
    /// `LISTEN scim_events`, so it hears every instance; on SQLite when this
    /// process commits events (another process's are seen when the wait times out).
    /// Create it before the first read, so that nothing committed in between is
    /// missed.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when PostgreSQL's listening connection fails.
    pub async fn event_waiter(&self) -> Result<EventWaiter, StoreError> {
        let inner = match &self.pool {
            Pool::Postgres(p) => {
                let mut listener = PgListener::connect_with(p).await.map_err(backend)?;
                listener.listen(CHANNEL).await.map_err(backend)?;
                Waiter::Postgres(Box::new(listener))
            }
            Pool::Sqlite(_) => Waiter::Local(self.new_events.subscribe()),
        };
        Ok(EventWaiter { inner })
    }

    /// Takes or renews `consumer`'s lease for `owner` until `ttl` from now, if no
    /// other owner holds an unexpired one; returns whether `owner` holds it. Several
    /// instances that each run a deliverer for one consumer use it so that one
    /// delivers at a time (delivery stays at least once: a lease that expires while
    /// its owner is still delivering lets another begin).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn lease_consumer(
        &self,
        consumer: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.register(consumer).await?;
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        // The database's clock, the same for every instance.
        let sql = match self.dialect() {
            Dialect::Postgres => {
                "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) \
                 UPDATE scim_event_consumers SET lease_owner = $2, lease_until_ms = now.ms + $3 \
                 FROM now WHERE name = $1 \
                 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until_ms < now.ms)"
            }
            Dialect::Sqlite => {
                "UPDATE scim_event_consumers SET lease_owner = ?2, \
                 lease_until_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + ?3 \
                 WHERE name = ?1 AND (lease_owner IS NULL OR lease_owner = ?2 \
                 OR lease_until_ms < CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"
            }
        };
        let taken = self
            .execute(
                sql,
                |q| q.bind(consumer).bind(owner).bind(ttl),
                |q| q.bind(consumer).bind(owner).bind(ttl),
            )
            .await?;
        Ok(taken == 1)
    }

    /// Forgets `consumer`: its cursor, its lease and its dead letters. A consumer
    /// that stopped reading holds back pruning (events it has not acknowledged are
    /// kept), so one that is gone for good is forgotten. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn forget_consumer(&self, consumer: &str) -> Result<bool, StoreError> {
        let dead = self.sql("DELETE FROM scim_event_dead_letters WHERE consumer = $1");
        self.execute(&dead, |q| q.bind(consumer), |q| q.bind(consumer))
            .await?;
        let sql = self.sql("DELETE FROM scim_event_consumers WHERE name = $1");
        let n = self
            .execute(&sql, |q| q.bind(consumer), |q| q.bind(consumer))
            .await?;
        Ok(n > 0)
    }

    /// Every known consumer and the sequence it acknowledged.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn consumers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = "SELECT name, acknowledged FROM scim_event_consumers ORDER BY name";
        let rows: Vec<(String, i64)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).fetch_all(p).await).map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(n, a)| (n, u64::try_from(a).unwrap_or_default()))
            .collect())
    }

    /// Gives up `owner`'s lease of `consumer`, so another instance may take it at once.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn release_consumer(&self, consumer: &str, owner: &str) -> Result<(), StoreError> {
        let sql = self.sql(
            "UPDATE scim_event_consumers SET lease_owner = NULL, lease_until_ms = NULL \
             WHERE name = $1 AND lease_owner = $2",
        );
        self.execute(
            &sql,
            |q| q.bind(consumer).bind(owner),
            |q| q.bind(consumer).bind(owner),
        )
        .await
        .map(|_| ())
    }

    /// Records that `consumer` gave up on `event` after `attempts` attempts, and
    /// why, and acknowledges it: the consumer goes on with the next event, and the
    /// event waits in the dead letters for an operator (see
    /// [`SqlStore::dead_letters`]). Recording it again changes nothing.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn dead_letter(
        &self,
        consumer: &str,
        event: &StoredEvent<String>,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO scim_event_dead_letters \
             (consumer, sequence, tenant, event, attempts, last_error, failed_ms) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) ON CONFLICT (consumer, sequence) DO NOTHING",
        );
        let sequence = i64::try_from(event.sequence).unwrap_or(i64::MAX);
        let json = serde_json::to_string(&event.event).map_err(StoreError::backend)?;
        let now = Utc::now().timestamp_millis();
        let attempts = i64::from(attempts);
        self.execute(
            &sql,
            |q| {
                q.bind(consumer)
                    .bind(sequence)
                    .bind(&event.tenant)
                    .bind(&json)
                    .bind(attempts)
                    .bind(error)
                    .bind(now)
            },
            |q| {
                q.bind(consumer)
                    .bind(sequence)
                    .bind(&event.tenant)
                    .bind(&json)
                    .bind(attempts)
                    .bind(error)
                    .bind(now)
            },
        )
        .await?;
        self.acknowledge_events(consumer, event.sequence).await
    }

    /// `consumer`'s dead letters, oldest first, up to `limit`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn dead_letters(
        &self,
        consumer: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = self.sql(
            "SELECT sequence, tenant, event::text, attempts, last_error, failed_ms \
             FROM scim_event_dead_letters WHERE consumer = $1 ORDER BY sequence LIMIT $2",
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, String, i64, String, i64)> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(consumer).bind(limit).fetch_all(p).await
        })
        .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        for (sequence, tenant, text, attempts, last_error, failed_ms) in rows {
            out.push(DeadLetter {
                event: StoredEvent {
                    sequence: u64::try_from(sequence).unwrap_or_default(),
                    tenant,
                    event: serde_json::from_str(&text).map_err(StoreError::backend)?,
                },
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                last_error,
                failed: DateTime::from_timestamp_millis(failed_ms).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// How many events `consumer` has not acknowledged yet, for metrics: from the
    /// counters (sequences have no gaps), plus the events committed but not
    /// numbered yet (PostgreSQL), counted.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on failure.
    pub async fn event_backlog(&self, consumer: &str) -> Result<u64, StoreError> {
        let sql = self.sql(
            "SELECT (SELECT last FROM scim_event_head), \
             (SELECT acknowledged FROM scim_event_consumers WHERE name = $1), \
             (SELECT MIN(sequence) FROM scim_events WHERE sequence > 0), \
             (SELECT COUNT(*) FROM scim_events WHERE sequence < 0)",
        );
        let (last, acknowledged, first, unnumbered): (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        ) = on_pool!(&self.pool, p => sqlx::query_as(&sql).bind(consumer).fetch_one(p).await)
            .map_err(backend)?;
        let last = last.unwrap_or(0);
        // Pruned events are not pending, whatever a new consumer acknowledged.
        let done = acknowledged.unwrap_or(0).max(first.map_or(last, |f| f - 1));
        Ok(u64::try_from(last - done + unnumbered.unwrap_or(0)).unwrap_or(0))
    }
}

/// An event a consumer gave up on (see [`SqlStore::dead_letter`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The event, as it was read.
    pub event: StoredEvent<String>,
    /// How many deliveries were attempted.
    pub attempts: u32,
    /// What the last attempt ran into.
    pub last_error: String,
    /// When the consumer gave up.
    pub failed: DateTime<Utc>,
}

/// Waits for events to commit (see [`SqlStore::event_waiter`]).
#[derive(Debug)]
pub struct EventWaiter {
    inner: Waiter,
}

#[derive(Debug)]
enum Waiter {
    Postgres(Box<PgListener>),
    Local(tokio::sync::watch::Receiver<u64>),
}

impl EventWaiter {
    /// Returns when events may have committed since the last call (or since the
    /// waiter was made), or after `timeout`. Returns `true` when woken by a commit
    /// or when PostgreSQL's listening connection failed (events may have been
    /// missed), `false` on the timeout; a consumer reads again either way.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        match &mut self.inner {
            Waiter::Postgres(listener) => {
                match tokio::time::timeout(timeout, listener.recv()).await {
                    Ok(Ok(_)) => {
                        // Every notification already queued: one read covers them.
                        while listener.next_buffered().is_some() {}
                        true
                    }
                    // The connection failed (the listener reconnects on the next
                    // call): events may have been missed, so read.
                    Ok(Err(_)) => true,
                    Err(_) => false,
                }
            }
            Waiter::Local(rx) => matches!(
                tokio::time::timeout(timeout, rx.changed()).await,
                Ok(Ok(()))
            ),
        }
    }
}
