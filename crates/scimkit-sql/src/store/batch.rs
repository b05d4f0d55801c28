//! Group commit for this process's SQLite writers.
//!
//! SQLite lets one transaction write at a time, and with `synchronous = FULL` each
//! commit waits for the disk. Writers that queue behind one another therefore share
//! a transaction: each runs its operation in a savepoint of the open one (rolled
//! back alone if the operation fails), then queues once more; the first to get its
//! turn again commits for every operation done meanwhile, and each learns the
//! commit's outcome before it answers. One disk flush serves many writes, none is
//! acknowledged before it is durable, and a write that fails leaves no trace.
//!
//! An operation whose statements do not depend on one another's answers runs as a
//! [`Script`] ([`Writers::run`]). Scripts queue, and one task, the leader, runs
//! what has queued: scripts of the same text go to SQLite's worker together, in one
//! call, each in its own savepoint, so a call's round trip and thread hops are paid
//! once for many operations. A script that refuses itself (a [`Script::check`] that
//! does not hold) stops the call there; it is rolled back to its savepoint alone,
//! and the scripts after it run again in the next call.

use std::any::Any;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_core::Stream;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Either, Executor, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot, watch};

use super::{StoreError, backend, begin_immediate, is_busy};

/// At most this many operations share one commit, which bounds how long the write
/// lock is held and how long the first of them waits for its answer.
const MAX_BATCH: usize = 64;

/// Why a shared commit failed, told to each operation it carried.
#[derive(Debug, Clone)]
struct CommitFailed {
    shared: usize,
    cause: Arc<sqlx::Error>,
}

impl std::fmt::Display for CommitFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the commit of this write (shared with {} other writes) failed: {}",
            self.shared, self.cause
        )
    }
}

impl std::error::Error for CommitFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// What became of one batch: `None` while it is open.
type Outcome = Option<Result<(), CommitFailed>>;

/// At most this many scripts of one text go to SQLite in one call. Calls carry a
/// power of two of them, so that a script's text makes at most five combined
/// texts in each connection's statement cache.
const MAX_CALL: usize = 16;

/// This process's queue of SQLite writers and the transaction they share.
#[derive(Debug)]
pub(super) struct Writers {
    batch: Arc<Mutex<Batch>>,
    scripts: Arc<std::sync::Mutex<Queue>>,
    /// Whether the leader keeps a connection of its own between transactions
    /// (not for an in-memory database, whose pool's one connection is the
    /// database).
    keep_own: bool,
}

/// The scripts waiting for the leader, and whether there is one.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    leading: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("jobs", &self.jobs.len())
            .field("leading", &self.leading)
            .finish()
    }
}

/// What an operation answers, its type erased while it queues.
type Value = Box<dyn Any + Send>;

/// Says whether an operation stands, from its statements' answers and the failure
/// that stopped them, if one did.
type Keep = Box<dyn FnOnce(Vec<Done>, Option<Failed>) -> Result<Value, StoreError> + Send>;

/// One queued [`Script`], with what judges its answers and where its outcome goes.
struct Job {
    script: Script,
    keep: Keep,
    /// Runs once the operation is durable.
    committed: Box<dyn FnOnce() + Send>,
    reply: oneshot::Sender<Result<Value, StoreError>>,
}

/// A job that stands, waiting for the commit that carries it.
struct Kept {
    value: Value,
    committed: Box<dyn FnOnce() + Send>,
    reply: oneshot::Sender<Result<Value, StoreError>>,
}

impl Kept {
    /// Tells the caller how the commit went.
    fn tell(self, outcome: &Result<(), CommitFailed>) {
        match outcome {
            Ok(()) => {
                (self.committed)();
                let _ = self.reply.send(Ok(self.value));
            }
            Err(e) => {
                let _ = self.reply.send(Err(StoreError::backend(e.clone())));
            }
        }
    }
}

#[derive(Debug)]
struct Batch {
    /// The open transaction, if any.
    tx: Option<Transaction<'static, Sqlite>>,
    /// The leader's connection, kept between its transactions (see
    /// [`Leader::cycle`]); out of the pool, so it is neither tested nor handed back
    /// after each commit.
    own: Option<SqliteConnection>,
    /// Operations done in it so far.
    ops: usize,
    /// Where its outcome is told.
    done: watch::Sender<Outcome>,
}

/// Commits the open transaction (if any) and tells its operations; the lock is
/// held until the commit is over. The commit runs as a task of its own, so that it
/// completes and is told even if the writer that started it is dropped meanwhile.
async fn commit(mut guard: OwnedMutexGuard<Batch>) -> Result<(), CommitFailed> {
    let tx = guard.tx.take();
    let shared = guard.ops.saturating_sub(1);
    guard.ops = 0;
    let done = std::mem::replace(&mut guard.done, watch::channel(None).0);
    let mut told = done.subscribe();
    let work = async move {
        let outcome = match tx {
            Some(tx) => tx.commit().await.map_err(|e| CommitFailed {
                shared,
                cause: Arc::new(e),
            }),
            None => Ok(()),
        };
        done.send_replace(Some(outcome));
        drop(guard);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(work)),
        Err(_) => work.await,
    }
    match told.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
        Err(_) => Err(CommitFailed {
            shared,
            cause: Arc::new(sqlx::Error::WorkerCrashed),
        }),
    }
}

impl Writers {
    /// The writers of one store; see [`Writers::keep_own`].
    pub(super) fn new(keep_own: bool) -> Self {
        Writers {
            batch: Arc::new(Mutex::new(Batch {
                tx: None,
                own: None,
                ops: 0,
                done: watch::channel(None).0,
            })),
            scripts: Arc::default(),
            keep_own,
        }
    }
}

impl Writers {
    /// Closes the leader's connection, if it has one.
    pub(super) async fn close(&self) {
        let own = self.batch.lock().await.own.take();
        if let Some(conn) = own {
            let _ = conn.close().await;
        }
    }

    /// Waits for this writer's turn and opens a transaction unless one is open
    /// (`BEGIN IMMEDIATE`: the write lock is taken up front).
    pub(super) async fn turn(&self, pool: &SqlitePool) -> Result<Turn, StoreError> {
        let mut guard = Arc::clone(&self.batch).lock_owned().await;
        if guard.tx.is_none() {
            guard.tx = Some(begin_immediate(pool).await?);
        }
        Ok(Turn {
            guard: Some(guard),
            batch: Arc::clone(&self.batch),
        })
    }
}

/// One writer's turn: [`savepoint`](Turn::savepoint) for its statements, then
/// [`finish`](Turn::finish) or [`abandon`](Turn::abandon).
pub(super) struct Turn {
    guard: Option<OwnedMutexGuard<Batch>>,
    batch: Arc<Mutex<Batch>>,
}

impl Turn {
    /// A savepoint in the shared transaction for this writer's statements: commit
    /// it (`RELEASE`) when they succeeded, roll it back when they did not.
    pub(super) async fn savepoint(&mut self) -> Result<Transaction<'_, Sqlite>, StoreError> {
        match self.guard.as_mut().and_then(|batch| batch.tx.as_mut()) {
            Some(tx) => tx.begin().await.map_err(backend),
            None => Err(StoreError::backend("no write transaction is open")),
        }
    }

    /// This writer's statements were released into the shared transaction: waits
    /// until it is committed, committing it if no other writer has.
    pub(super) async fn finish(mut self) -> Result<(), StoreError> {
        let Some(mut guard) = self.guard.take() else {
            return Err(StoreError::backend("no write transaction is open"));
        };
        guard.ops += 1;
        if guard.ops >= MAX_BATCH {
            return commit(guard).await.map_err(StoreError::backend);
        }
        let done = guard.done.subscribe();
        drop(guard);
        // The writers queued meanwhile add theirs; then one commit serves all.
        let mut waiting = Waiting {
            batch: Some(Arc::clone(&self.batch)),
            done,
        };
        let guard = Arc::clone(&self.batch).lock_owned().await;
        let told = waiting.done.borrow().clone();
        waiting.batch = None;
        match told {
            Some(outcome) => outcome,
            None => commit(guard).await,
        }
        .map_err(StoreError::backend)
    }

    /// This writer's savepoint was rolled back: it leaves the shared transaction as
    /// it found it and ends it: rolled back if nothing is in it, else committed for
    /// the writes in it, so that a writer that lost a race to one of them (its
    /// version check failed) reads the winner when it tries again.
    pub(super) async fn abandon(mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        if guard.ops > 0 {
            // Its failure is told to the writes it carried.
            let _ = commit(guard).await;
        } else if let Some(tx) = guard.tx.take() {
            // A failed rollback is retried when the connection returns to the pool.
            let _ = tx.rollback().await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // A writer stopped in the middle of its turn (its request was dropped): its
        // savepoint is rolled back by sqlx; an empty transaction is closed rather
        // than kept open with nobody to commit it. (Scripts take no turn: the
        // leader runs them in a task of its own, to the end.)
        if let Some(batch) = self.guard.as_mut() {
            if batch.ops == 0 {
                batch.tx = None;
            }
        }
    }
}

/// A writer waiting for the commit of its batch. If it is dropped before (its
/// request was), the commit is still made, by a task, so that the other writes of
/// the batch are not left waiting on it and the write lock is not held.
struct Waiting {
    batch: Option<Arc<Mutex<Batch>>>,
    done: watch::Receiver<Outcome>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let done = self.done.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let guard = batch.lock_owned().await;
                if done.borrow().is_none() {
                    let _ = commit(guard).await;
                }
            });
        }
    }
}

/// One value bound to a [`Script`].
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Text(String),
    Int(i64),
    Null,
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Self {
        Arg::Int(i)
    }
}

impl From<Option<i64>> for Arg {
    fn from(i: Option<i64>) -> Self {
        i.map_or(Arg::Null, Arg::Int)
    }
}

/// What makes a [`Script::check`] work, run on every SQLite connection when it
/// opens: a view (temporary, the connection's own) into which inserting a false
/// value aborts the statement with [`REFUSED`].
pub(super) const CHECKS: &str = "CREATE TEMP VIEW IF NOT EXISTS scim_check (ok) AS SELECT 1 WHERE 0; \
     CREATE TEMP TRIGGER IF NOT EXISTS scim_check_refuses INSTEAD OF INSERT ON scim_check \
     WHEN NOT NEW.ok BEGIN SELECT RAISE(ABORT, 'scimkit: a write refused itself'); END";

/// The message of a [`Script::check`] that did not hold.
const REFUSED: &str = "scimkit: a write refused itself";

/// The savepoint a [`Script`] opens first; a successful script leaves it open (the
/// shared transaction's commit commits it), a failed one is rolled back to it.
const SAVEPOINT: &str = "SAVEPOINT scim_op";
const UNDO: &str = "ROLLBACK TO scim_op; RELEASE scim_op";

/// Statements that run in one call to SQLite: a savepoint, then those
/// [`push`](Script::push)ed, in order.
#[derive(Debug)]
pub(super) struct Script {
    sql: String,
    args: Vec<Arg>,
    statements: usize,
}

/// What one statement of a [`Script`] answered.
#[derive(Default)]
pub(super) struct Done {
    /// The rows it returned.
    pub(super) rows: Vec<SqliteRow>,
    /// The rows it inserted, updated or deleted.
    pub(super) changes: u64,
}

/// The statement of a [`Script`] that failed, and why; the statements after it did
/// not run.
#[derive(Debug)]
pub(super) struct Failed {
    /// Its index among the script's statements.
    pub(super) statement: usize,
    /// What SQLite answered.
    pub(super) error: sqlx::Error,
}

impl Failed {
    /// Whether a [`Script::check`] stopped the script, rather than a failure.
    pub(super) fn is_refusal(&self) -> bool {
        self.error
            .as_database_error()
            .is_some_and(|e| e.message().contains(REFUSED))
    }

    /// The failure as the store reports it, keeping its cause.
    pub(super) fn into_store_error(self) -> StoreError {
        backend(self.error)
    }
}

impl Script {
    /// A script that opens its savepoint.
    pub(super) fn new() -> Self {
        Script {
            sql: SAVEPOINT.to_owned(),
            args: Vec::new(),
            statements: 1,
        }
    }

    /// Appends `sql`, one statement or several separated by `;` (neither `;` nor
    /// `?` appears inside a literal), whose numbered parameters (`?1`, `?2` …) refer to `args`; returns
    /// the indexes of its statements among the script's answers.
    ///
    /// The parameters are rewritten as unnamed ones, each bound to its value in the
    /// order they appear: in one call, sqlx numbers parameters across the whole
    /// script, so each statement's own `?1` would not be its first argument.
    ///
    /// # Errors
    /// A backend error if `sql` names a parameter beyond `args` (a bug).
    pub(super) fn push(&mut self, sql: &str, args: &[Arg]) -> Result<Range<usize>, StoreError> {
        let first = self.statements;
        self.statements += 1;
        self.sql.reserve(sql.len() + 2);
        self.sql.push_str("; ");
        let mut rest = sql;
        while let Some(at) = rest.find(['?', ';']) {
            self.sql.push_str(&rest[..at]);
            let (mark, after) = rest[at..].split_at(1);
            let digits = if mark == ";" {
                0
            } else {
                after.bytes().take_while(u8::is_ascii_digit).count()
            };
            if mark == ";" {
                self.statements += 1;
                self.sql.push(';');
            } else {
                let n: usize = after[..digits].parse().unwrap_or(0);
                let arg = n.checked_sub(1).and_then(|i| args.get(i)).ok_or_else(|| {
                    StoreError::backend(format!("parameter ?{n} of a script has no value"))
                })?;
                self.args.push(arg.clone());
                self.sql.push('?');
            }
            rest = &after[digits..];
        }
        self.sql.push_str(rest);
        Ok(first..self.statements)
    }

    /// Appends a check: `condition` (an SQL expression, with numbered parameters
    /// as in [`push`](Script::push)) must be true, else the script stops here,
    /// refused ([`Failed::is_refusal`]): no statement after it runs, in this script
    /// or in those sent with it in one call. Returns the check's index.
    pub(super) fn check(&mut self, condition: &str, args: &[Arg]) -> Result<usize, StoreError> {
        let sql = format!("INSERT INTO temp.scim_check (ok) SELECT {condition}");
        Ok(self.push(&sql, args)?.start)
    }

    /// The text of `scripts` run one after another in one call, after `first`
    /// (statements without parameters, separated by `;`) if given; their arguments
    /// are [`arguments`] of the same scripts.
    fn joined(first: Option<&str>, scripts: &[&Script]) -> String {
        let mut sql = first.unwrap_or_default().to_owned();
        for script in scripts {
            if !sql.is_empty() {
                sql.push_str("; ");
            }
            sql.push_str(&script.sql);
        }
        sql
    }
}

/// The arguments of `scripts`, in order.
fn arguments<'a>(scripts: &'a [&'a Script]) -> impl Iterator<Item = &'a Arg> {
    scripts.iter().flat_map(|s| s.args.iter())
}

/// Runs `sql`, bound to the [`arguments`] of `scripts` (one script's text, or
/// their [`joined`](Script::joined) text), on `conn`: the answers of the
/// statements that completed, and the failure that stopped the rest, if one did.
async fn execute(
    conn: &mut SqliteConnection,
    sql: &str,
    scripts: &[&Script],
) -> (Vec<Done>, Option<sqlx::Error>) {
    let mut query = sqlx::query(sql);
    for arg in arguments(scripts) {
        query = match arg {
            Arg::Text(s) => query.bind(s.as_str()),
            Arg::Int(i) => query.bind(*i),
            Arg::Null => query.bind(None::<i64>),
        };
    }
    let mut answers = Vec::with_capacity(scripts.iter().map(|s| s.statements).sum());
    let mut rows = Vec::new();
    let mut stream = conn.fetch_many(query);
    while let Some(step) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        match step {
            Ok(Either::Left(done)) => answers.push(Done {
                rows: std::mem::take(&mut rows),
                changes: done.rows_affected(),
            }),
            Ok(Either::Right(row)) => rows.push(row),
            Err(e) => return (answers, Some(e)),
        }
    }
    (answers, None)
}

/// Rolls the innermost `n` scripts' savepoints back and releases them.
async fn undo(conn: &mut SqliteConnection, n: usize) -> Option<sqlx::Error> {
    let mut sql = String::with_capacity(n * (UNDO.len() + 2));
    for i in 0..n {
        if i > 0 {
            sql.push_str("; ");
        }
        sql.push_str(UNDO);
    }
    conn.execute(sql.as_str()).await.err()
}

impl Writers {
    /// Runs `script` as one operation of the shared transaction and hands its
    /// statements' answers (and the failure that stopped them, if one did) to
    /// `keep`, which says whether the operation stands. When it does not, the script
    /// is rolled back to its savepoint and leaves no trace. An operation that stands
    /// is answered once the commit that carries it is durable; `committed` runs
    /// then, even if the caller is gone.
    ///
    /// The script queues for the leader (see the [module documentation](self)),
    /// which runs as a task of its own: a caller dropped halfway (a client that went
    /// away) cannot leave half a script in the transaction other writers share.
    /// SQLite's busy answer can come only from opening the shared transaction (its
    /// statements run holding the write lock), which retries by itself.
    pub(super) async fn run<T, K>(
        &self,
        pool: &SqlitePool,
        script: Script,
        keep: K,
        committed: impl FnOnce() + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        K: FnOnce(Vec<Done>, Option<Failed>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            script,
            keep: Box::new(move |answers, failed| {
                keep(answers, failed).map(|v| Box::new(v) as Value)
            }),
            committed: Box::new(committed),
            reply,
        };
        let lead = {
            let mut queue = self.scripts.lock().unwrap_or_else(PoisonError::into_inner);
            queue.jobs.push_back(job);
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            let leader = Leader {
                writers: Writers {
                    batch: Arc::clone(&self.batch),
                    scripts: Arc::clone(&self.scripts),
                    keep_own: self.keep_own,
                },
                pool: pool.clone(),
                leading: true,
            };
            tokio::spawn(leader.lead());
        }
        let value = answer
            .await
            .map_err(|_| StoreError::backend("the writer that ran this write stopped"))??;
        value
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|_| StoreError::backend("a write answered a value of another type"))
    }

    /// Takes at most `room` of the queued jobs.
    fn take(&self, room: usize) -> VecDeque<Job> {
        let mut queue = self.scripts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = room.min(queue.jobs.len());
        queue.jobs.drain(..n).collect()
    }

    /// Puts jobs that did not run back at the head of the queue.
    fn requeue(&self, jobs: impl DoubleEndedIterator<Item = Job>) {
        let mut queue = self.scripts.lock().unwrap_or_else(PoisonError::into_inner);
        for job in jobs.rev() {
            queue.jobs.push_front(job);
        }
    }
}

/// The task that runs the queued scripts, while there are any.
struct Leader {
    writers: Writers,
    pool: SqlitePool,
    /// Whether the queue still counts on this leader; cleared on the way out.
    leading: bool,
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Stopped midway (its runtime shut down): the scripts left queued are told,
        // rather than waiting for a leader, and the next one to queue starts one.
        if self.leading {
            let jobs = {
                let mut queue = self
                    .writers
                    .scripts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                queue.leading = false;
                std::mem::take(&mut queue.jobs)
            };
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::backend(
                    "the writer that was to run this write stopped",
                )));
            }
        }
    }
}

impl Leader {
    async fn lead(mut self) {
        loop {
            {
                let mut queue = self
                    .writers
                    .scripts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if queue.jobs.is_empty() {
                    queue.leading = false;
                    self.leading = false;
                    return;
                }
            }
            let mut guard = Arc::clone(&self.writers.batch).lock_owned().await;
            if guard.tx.is_some() {
                // Other writers' operations wait for their commit: it is made
                // first (and told to them), then the queued scripts get theirs.
                let _ = commit(guard).await;
                continue;
            }
            let outcome = if self.writers.keep_own {
                // Out of the pool before it is used: if this task stops midway, the
                // connection is closed (which rolls back what is open), never handed
                // back to the pool in a transaction. After an error its state is
                // unknown: it is closed too, and a new one taken next time.
                let conn = match guard.own.take() {
                    Some(conn) => Ok(conn),
                    None => self.pool.acquire().await.map(PoolConnection::detach),
                };
                match conn {
                    Ok(mut conn) => {
                        let outcome = self.cycle(&mut conn).await;
                        if outcome.is_ok() {
                            guard.own = Some(conn);
                        }
                        outcome
                    }
                    Err(e) => Err(backend(e)),
                }
            } else {
                self.pooled_cycle().await
            };
            drop(guard);
            if let Err(e) = outcome {
                // Every queued script is told, rather than waiting for a
                // transaction that may never open.
                let shared = Arc::new(e);
                for job in self.writers.take(usize::MAX) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::backend(Shared(Arc::clone(&shared)))));
                }
            }
        }
    }

    /// One transaction on the leader's own connection `conn`: it opens it (`BEGIN
    /// IMMEDIATE`, in the call that carries the first scripts, waiting for the
    /// write lock as [`begin_immediate`] does), runs the queued scripts and commits
    /// those that stand, telling each how it went. An error means `conn` can no
    /// longer be trusted; the scripts it carried were told.
    async fn cycle(&self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        let mut kept = Vec::new();
        let mut open = false;
        let mut attempt = 0;
        let broken = loop {
            match self.fill(conn, &mut open, &mut kept).await {
                Ok(()) => break None,
                // The write lock is another process's beyond the busy timeout.
                Err(Stop::Begin(e)) if attempt < 3 && is_busy(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                // Nothing is open, and the scripts went back to the queue.
                Err(Stop::Begin(e)) => return Err(backend(e)),
                Err(Stop::Broken(e)) => break Some(e),
            }
        };
        if !open {
            return Ok(());
        }
        let outcome = match broken {
            Some(cause) => Err(cause),
            None if kept.is_empty() => conn.execute("ROLLBACK").await.map(drop),
            None => conn.execute(COMMIT).await.map(drop),
        };
        let failed = outcome.is_err();
        tell(kept, outcome);
        if failed {
            // Rolled back whole, if it can be; else the caller closes `conn`.
            conn.execute("ROLLBACK").await.map_err(backend)?;
        }
        Ok(())
    }

    /// [`cycle`](Leader::cycle) for an in-memory database, whose pool's one
    /// connection is the database: a pooled transaction, which sqlx rolls back if
    /// this task stops midway.
    async fn pooled_cycle(&self) -> Result<(), StoreError> {
        let mut tx = begin_immediate(&self.pool).await?;
        let mut open = true;
        let mut kept = Vec::new();
        let outcome = match self.fill(&mut tx, &mut open, &mut kept).await {
            Err(Stop::Begin(e) | Stop::Broken(e)) => Err(e),
            Ok(()) if kept.is_empty() => tx.rollback().await,
            Ok(()) => match tx.execute(RELEASE_MARK).await {
                Ok(_) => tx.commit().await,
                Err(e) => Err(e),
            },
        };
        tell(kept, outcome);
        Ok(())
    }

    /// Runs queued scripts in the leader's transaction until none is queued or
    /// [`MAX_BATCH`] were taken: those of one text in calls of a power of two,
    /// the first call opening the transaction unless it is `open`, and marking it.
    /// Scripts that stand go to `kept`; the others are told and leave no trace;
    /// scripts that did not get to run go back to the queue.
    async fn fill(
        &self,
        conn: &mut SqliteConnection,
        open: &mut bool,
        kept: &mut Vec<Kept>,
    ) -> Result<(), Stop> {
        // Refused scripts count as much as those that stand: a cycle ends, and
        // releases the write lock, however many are refused.
        let mut taken = 0;
        let mut marked = false;
        while taken < MAX_BATCH {
            let jobs = self.writers.take(MAX_BATCH - taken);
            if jobs.is_empty() {
                break;
            }
            taken += jobs.len();
            self.run_jobs(conn, jobs, kept, open, &mut marked).await?;
        }
        Ok(())
    }

    /// Runs `jobs` in the leader's transaction: those of one text in calls of a
    /// power of two, the first call opening the transaction unless it is `open`,
    /// and setting its mark unless it is `marked`. Jobs that stand go to `kept`;
    /// the others are told and leave no trace; jobs that did not get to run go
    /// back to the queue.
    async fn run_jobs(
        &self,
        conn: &mut SqliteConnection,
        jobs: VecDeque<Job>,
        kept: &mut Vec<Kept>,
        open: &mut bool,
        marked: &mut bool,
    ) -> Result<(), Stop> {
        let mut todo = Vec::from(jobs);
        // Scripts of one text side by side; the queue's order is arbitrary anyway
        // (their callers are concurrent), and a stable sort keeps it otherwise.
        todo.sort_by(|a, b| a.script.sql.cmp(&b.script.sql));
        let mut todo = VecDeque::from(todo);
        while let Some(first) = todo.front() {
            let same = todo
                .iter()
                .take_while(|j| j.script.sql == first.script.sql)
                .count()
                .min(MAX_CALL);
            // The largest power of two not above `same` (at least 1).
            let n = 1 << (usize::BITS - 1 - same.max(1).leading_zeros());
            let chunk: Vec<Job> = todo.drain(..n).collect();
            // The transaction opens, and is marked, in the call of its first scripts.
            let (first, before) = match (*open, *marked) {
                (false, _) => (Some(BEGIN), 2),
                (true, false) => (Some(MARK), 1),
                (true, true) => (None, 0),
            };
            let scripts: Vec<&Script> = chunk.iter().map(|j| &j.script).collect();
            let joined = (before > 0 || scripts.len() > 1).then(|| Script::joined(first, &scripts));
            let Some(sql) = joined
                .as_deref()
                .or(scripts.first().map(|s| s.sql.as_str()))
            else {
                continue;
            };
            let (mut answers, failed) = execute(conn, sql, &scripts).await;
            if before == 2 && !answers.is_empty() {
                *open = true;
            }
            if answers.len() < before {
                self.writers.requeue(chunk.into_iter().chain(todo));
                let e = failed.unwrap_or_else(|| {
                    sqlx::Error::Protocol(
                        "the transaction's first statements did not answer".into(),
                    )
                });
                return Err(if *open {
                    Stop::Broken(e)
                } else {
                    Stop::Begin(e)
                });
            }
            *marked = true;
            answers.drain(..before);
            let after = judge(chunk, answers, failed, kept);
            if after.undo > 0 {
                if let Some(cause) = undo(conn, after.undo).await {
                    self.writers.requeue(after.again.into_iter().chain(todo));
                    return Err(Stop::Broken(cause));
                }
            }
            for job in after.again.into_iter().rev() {
                todo.push_front(job);
            }
        }
        Ok(())
    }
}

/// Why [`Leader::run_jobs`] stopped.
enum Stop {
    /// The transaction could not be opened; nothing ran.
    Begin(sqlx::Error),
    /// The transaction can no longer be trusted (a savepoint could not be rolled
    /// back).
    Broken(sqlx::Error),
}

/// What opens the leader's transaction: the write lock is taken up front, and the
/// transaction marked with [`MARK`].
const BEGIN: &str = "BEGIN IMMEDIATE; SAVEPOINT scim_tx";

/// A savepoint that spans the leader's transaction. SQLite may roll a whole
/// transaction back by itself when a statement fails (a full disk, an I/O error,
/// no memory), and the statements after it would then run outside it; the
/// commit releases the mark first, and fails if it is gone.
const MARK: &str = "SAVEPOINT scim_tx";

/// Releases [`MARK`]: it fails if the transaction is not the one that set it.
const RELEASE_MARK: &str = "RELEASE scim_tx";

/// Commits the leader's transaction if it is still the one [`BEGIN`] opened.
const COMMIT: &str = "RELEASE scim_tx; COMMIT";

/// What is left to do after a call: savepoints to roll back (the innermost first),
/// and jobs to run again.
struct After {
    undo: usize,
    again: Vec<Job>,
}

/// Judges the jobs of one call, in order, from its answers: each job's own answers
/// are the next `statements` of them. At the first job that does not stand, it and
/// the jobs after it that ran are to be rolled back, and those after it to run again.
fn judge(
    chunk: Vec<Job>,
    answers: Vec<Done>,
    failed: Option<sqlx::Error>,
    kept: &mut Vec<Kept>,
) -> After {
    let ran = answers.len();
    let mut failed = failed;
    let mut answers = answers.into_iter();
    let mut offset = 0;
    let mut chunk = chunk.into_iter();
    while let Some(job) = chunk.next() {
        let len = job.script.statements;
        let got = ran.saturating_sub(offset).min(len);
        let mine: Vec<Done> = answers.by_ref().take(got).collect();
        let stopped = if got == len {
            None
        } else {
            Some(Failed {
                statement: got,
                error: failed.take().unwrap_or_else(|| {
                    sqlx::Error::Protocol(format!(
                        "a script of {len} statements answered {got} times"
                    ))
                }),
            })
        };
        let complete = stopped.is_none();
        let verdict = match (job.keep)(mine, stopped) {
            Ok(value) if complete => {
                kept.push(Kept {
                    value,
                    committed: job.committed,
                    reply: job.reply,
                });
                offset += len;
                continue;
            }
            Ok(_) => Err(StoreError::backend(
                "a write was refused by its own check, and its answers did not say why",
            )),
            Err(e) => Err(e),
        };
        let _ = job.reply.send(verdict);
        // This job's savepoint, if it was opened, and those of the later jobs that
        // ran, innermost first.
        let rest: Vec<Job> = chunk.collect();
        let mut undo = usize::from(got > 0);
        let mut at = offset + len;
        for later in &rest {
            if ran > at {
                undo += 1;
            }
            at += later.script.statements;
        }
        return After { undo, again: rest };
    }
    After {
        undo: 0,
        again: Vec::new(),
    }
}

/// Tells the kept scripts of a transaction how its commit went.
fn tell(kept: Vec<Kept>, outcome: Result<(), sqlx::Error>) {
    let outcome = outcome.map_err(|cause| CommitFailed {
        shared: kept.len().saturating_sub(1),
        cause: Arc::new(cause),
    });
    for k in kept {
        k.tell(&outcome);
    }
}

/// A failure shared by several writes.
#[derive(Debug, Clone)]
struct Shared(Arc<StoreError>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the write transaction could not be opened: {}", self.0)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &Script) -> Vec<String> {
        script
            .args
            .iter()
            .map(|a| match a {
                Arg::Text(s) => s.clone(),
                Arg::Int(i) => i.to_string(),
                Arg::Null => "NULL".to_owned(),
            })
            .collect()
    }

    #[test]
    fn numbered_parameters_become_unnamed_ones_in_order() {
        let mut script = Script::new();
        let args: Vec<Arg> = (1..=11).map(|i| Arg::Int(i * 100)).collect();
        let first = script
            .push(
                "UPDATE t SET a = ?2, b = ?11 WHERE k = ?1 AND v = ?2",
                &args,
            )
            .expect("push");
        assert_eq!(first, 1..2);
        // Each statement's ?1 is its own first argument.
        let next = script
            .push(
                "DELETE FROM u WHERE k = ?1; SELECT ?3, 'a' FROM u; INSERT INTO u VALUES (?2)",
                &["x".into(), Arg::Null, "z".into()],
            )
            .expect("push");
        assert_eq!(next, 2..5);
        assert_eq!(script.statements, 5);
        assert_eq!(
            script.sql,
            "SAVEPOINT scim_op; UPDATE t SET a = ?, b = ? WHERE k = ? AND v = ?; \
             DELETE FROM u WHERE k = ?; SELECT ?, 'a' FROM u; INSERT INTO u VALUES (?)"
        );
        assert_eq!(
            texts(&script),
            ["200", "1100", "100", "200", "x", "z", "NULL"]
        );
    }

    /// A job of `statements` statements (its savepoint included) whose `keep`
    /// stands unless `refuse`, and the receiver of its answer.
    fn job(statements: usize, refuse: bool) -> (Job, oneshot::Receiver<Result<Value, StoreError>>) {
        let mut script = Script::new();
        for _ in 1..statements {
            script.push("SELECT 1", &[]).expect("push");
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            script,
            keep: Box::new(move |answers, failed| match (refuse, failed) {
                (true, _) => Err(StoreError::PreconditionFailed),
                (false, Some(f)) => Err(f.into_store_error()),
                (false, None) => Ok(Box::new(answers.len()) as Value),
            }),
            committed: Box::new(|| ()),
            reply,
        };
        (job, answer)
    }

    fn done(n: usize) -> Vec<Done> {
        (0..n).map(|_| Done::default()).collect()
    }

    #[test]
    fn joined_scripts_keep_their_statements_and_arguments_in_order() {
        let mut a = Script::new();
        a.push("SELECT ?1", &[Arg::Int(1)]).expect("push");
        let mut b = Script::new();
        b.push("SELECT ?2, ?1", &[Arg::Int(2), Arg::Int(3)])
            .expect("push");
        b.check("?1 > 0", &[Arg::Int(4)]).expect("check");
        let scripts = [&a, &b];
        assert_eq!(
            Script::joined(None, &scripts),
            "SAVEPOINT scim_op; SELECT ?; SAVEPOINT scim_op; SELECT ?, ?; \
             INSERT INTO temp.scim_check (ok) SELECT ? > 0"
        );
        let bound: Vec<String> = arguments(&scripts)
            .map(|a| match a {
                Arg::Text(s) => s.clone(),
                Arg::Int(i) => i.to_string(),
                Arg::Null => "NULL".to_owned(),
            })
            .collect();
        assert_eq!(bound, ["1", "3", "2", "4"]);
        assert_eq!((a.statements, b.statements), (2, 3));
        assert_eq!(
            Script::joined(Some(BEGIN), &[&a]),
            "BEGIN IMMEDIATE; SAVEPOINT scim_tx; SAVEPOINT scim_op; SELECT ?"
        );
        assert_eq!(
            Script::joined(Some(MARK), &[&a]),
            "SAVEPOINT scim_tx; SAVEPOINT scim_op; SELECT ?"
        );
        // The answers a call strips before the scripts' own (`run_jobs`).
        assert_eq!(BEGIN.split(';').count(), 2);
        assert_eq!(MARK.split(';').count(), 1);
    }

    #[test]
    fn a_call_that_ran_whole_keeps_every_job() {
        let jobs: Vec<_> = (0..3).map(|_| job(3, false)).collect();
        let (jobs, mut answers): (Vec<Job>, Vec<_>) = jobs.into_iter().unzip();
        let mut kept = Vec::new();
        let after = judge(jobs, done(9), None, &mut kept);
        assert_eq!((after.undo, after.again.len(), kept.len()), (0, 0, 3));
        // Nobody is told before the commit.
        assert!(answers.iter_mut().all(|a| a.try_recv().is_err()));
        for k in kept {
            k.tell(&Ok(()));
        }
        for mut a in answers {
            let v = a.try_recv().expect("told").expect("stands");
            assert_eq!(v.downcast::<usize>().map(|v| *v).ok(), Some(3));
        }
    }

    #[test]
    fn a_job_stopped_midway_is_undone_alone_and_the_rest_run_again() {
        let (a, _) = job(3, false);
        let (b, mut b_answer) = job(4, false);
        let (c, _) = job(2, false);
        let mut kept = Vec::new();
        // The call stopped at b's third statement: c never ran.
        let after = judge(
            vec![a, b, c],
            done(5),
            Some(sqlx::Error::Protocol("stop".into())),
            &mut kept,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(after.undo, 1, "only b's savepoint is open");
        assert_eq!(after.again.len(), 1);
        assert_eq!(after.again[0].script.statements, 2);
        assert!(matches!(
            b_answer.try_recv(),
            Ok(Err(StoreError::Backend(_)))
        ));
    }

    #[test]
    fn a_job_refused_after_a_whole_call_undoes_those_after_it() {
        let (a, _) = job(2, false);
        let (b, mut b_answer) = job(2, true);
        let (c, mut c_answer) = job(2, false);
        let (d, _) = job(2, false);
        let mut kept = Vec::new();
        let after = judge(vec![a, b, c, d], done(8), None, &mut kept);
        assert_eq!(kept.len(), 1);
        assert_eq!(
            after.undo, 3,
            "b, c and d ran; their savepoints are rolled back"
        );
        assert_eq!(after.again.len(), 2, "c and d run again");
        assert!(matches!(
            b_answer.try_recv(),
            Ok(Err(StoreError::PreconditionFailed))
        ));
        assert!(c_answer.try_recv().is_err(), "c is not told yet");
    }

    #[test]
    fn a_job_whose_savepoint_failed_has_nothing_to_undo() {
        let (a, _) = job(2, false);
        let (b, _) = job(2, false);
        let mut kept = Vec::new();
        let after = judge(
            vec![a, b],
            done(2),
            Some(sqlx::Error::Protocol("stop".into())),
            &mut kept,
        );
        assert_eq!((kept.len(), after.undo, after.again.len()), (1, 0, 0));
    }

    #[test]
    fn a_check_refuses_with_the_message_a_refusal_is_told_by() {
        assert!(CHECKS.contains(&format!("RAISE(ABORT, '{REFUSED}')")));
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error() {
        let mut script = Script::new();
        assert!(script.push("SELECT ?3", &[Arg::Int(1)]).is_err());
        assert!(script.push("SELECT ?0", &[Arg::Int(1)]).is_err());
        assert!(script.push("SELECT ?", &[Arg::Int(1)]).is_err());
    }
}
