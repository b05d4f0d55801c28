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
//! what has queued, each script in its own savepoint, on a thread that may block:
//! for a database file, on a connection of its own that it drives directly
//! (rusqlite, on the same SQLite library as sqlx's pool), so that a write's
//! statements cost what SQLite spends on them, not a thread hop and a message
//! each; for an in-memory database, on the pool's one connection. A script that
//! refuses itself (a [`Script::check`] that does not hold) or fails is rolled back
//! to its savepoint alone; the others go on.

use std::any::Any;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use futures_core::Stream;
use rusqlite::types::ValueRef;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Either, Executor, Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot, watch};

use super::{SQLITE_BUSY_WAIT, StoreError, backend, begin_immediate, is_busy};

/// At most this many operations share one commit, which bounds how long the write
/// lock is held and how long the first of them waits for its answer.
const MAX_BATCH: usize = 64;

/// Why a shared commit failed, told to each operation it carried.
#[derive(Debug, Clone)]
struct CommitFailed {
    shared: usize,
    cause: Arc<DbError>,
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

/// How many prepared statements the leader's own connection keeps: every text
/// the scripts of a busy server use, several times over.
const STATEMENTS: usize = 256;

/// How long the leader's thread waits for scripts after a commit before it hands
/// the write lock's turn back (see [`more`]).
const LINGER: Duration = Duration::from_millis(1);

/// How long the leader's thread runs transaction after transaction at most before
/// it hands back to the runtime (see [`lead_on`]).
const STINT: Duration = Duration::from_millis(50);

/// How long the WAL of a database file may grow before the writers truncate it
/// (see [`WalBound`]): four times the size at which SQLite checkpoints by itself
/// (1,000 pages, of 4 KiB at the default page size).
const WAL_LIMIT: u64 = 16 << 20;

/// How often, at most, the writers look at the WAL's size after their commits.
const WAL_LOOK: Duration = Duration::from_millis(50);

/// How long the writers wait before they try again to truncate a WAL that readers
/// kept them from truncating.
const WAL_RETRY: Duration = Duration::from_millis(500);

/// How many times a checkpoint that truncates the WAL waits for readers, and how
/// long each time (see [`briefly`]): about 10 ms in all, during which the batch
/// lock and SQLite's write lock are held.
const WAL_WAITS: i32 = 40;
const WAL_WAIT: Duration = Duration::from_micros(250);

/// This process's queue of SQLite writers and the transaction they share.
#[derive(Debug)]
pub(super) struct Writers {
    batch: Arc<Mutex<Batch>>,
    /// How many tasks other than the leader wait for `batch` (see [`wait_for`]).
    waiting: Arc<AtomicUsize>,
    scripts: Arc<std::sync::Mutex<Queue>>,
    /// The database file, on which the leader opens a connection of its own and
    /// keeps it between transactions; `None` for an in-memory database, whose
    /// pool's one connection is the database.
    file: Option<PathBuf>,
}

/// The scripts waiting for the leader, and whether there is one.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    leading: bool,
    /// The leader's thread while it waits for scripts between transactions.
    parked: Option<std::thread::Thread>,
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
    /// The leader's own connection, kept between its transactions (see
    /// [`cycle`]).
    own: Option<rusqlite::Connection>,
    /// The WAL of the database file and when to look at it next; `None` in memory.
    wal: Option<WalBound>,
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
        let committed = tx.is_some();
        let outcome = match tx {
            Some(tx) => tx.commit().await.map_err(|e| CommitFailed {
                shared,
                cause: Arc::new(DbError::Pooled(e)),
            }),
            None => Ok(()),
        };
        let committed = committed && outcome.is_ok();
        done.send_replace(Some(outcome));
        // The writers of the batch read the outcome once they have the lock: the WAL
        // is looked at here (a `stat`), and truncated only after they have had it.
        let long = committed && guard.wal.as_mut().is_some_and(WalBound::due_and_long);
        let batch = Arc::clone(OwnedMutexGuard::mutex(&guard));
        drop(guard);
        if long {
            keep_wal(batch).await;
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(work)),
        Err(_) => work.await,
    }
    match told.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
        Err(_) => Err(CommitFailed {
            shared,
            cause: Arc::new(DbError::Pooled(sqlx::Error::WorkerCrashed)),
        }),
    }
}

/// After a commit on a pooled connection left the WAL too long: truncates it
/// ([`truncate_if_long`]) on the leader's own connection (opened if the leader has
/// none yet), on a thread that may block, once this task has its turn of the
/// batch lock after the writers the commit carried.
async fn keep_wal(batch: Arc<Mutex<Batch>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut guard = batch.lock_owned().await;
    let Some((db, path)) = guard.wal.as_ref().map(|w| (w.db.clone(), w.wal.clone())) else {
        return;
    };
    let own = guard.own.take();
    let kept = runtime.spawn_blocking(move || {
        let conn = match own {
            Some(conn) => conn,
            None => match open(&db) {
                Ok(conn) => conn,
                Err(_) => return (None, true),
            },
        };
        let fine = truncate_if_long(&conn, &path);
        (Some(conn), fine)
    });
    if let Ok((own, fine)) = kept.await {
        guard.own = own;
        if let Some(wal) = guard.wal.as_mut().filter(|_| !fine) {
            wal.refused();
        }
    }
}

impl Writers {
    /// The writers of one store on the database `file` (`None`: in memory).
    pub(super) fn new(file: Option<PathBuf>) -> Self {
        Writers {
            batch: Arc::new(Mutex::new(Batch {
                tx: None,
                own: None,
                wal: file.as_deref().map(WalBound::new),
                ops: 0,
                done: watch::channel(None).0,
            })),
            waiting: Arc::default(),
            scripts: Arc::default(),
            file,
        }
    }
}

impl Writers {
    /// Closes the leader's connection, if it has one.
    pub(super) async fn close(&self) {
        let own = wait_for(&self.batch, &self.waiting).await.own.take();
        if let Some(conn) = own {
            let _ = tokio::task::spawn_blocking(move || drop(conn.close())).await;
        }
    }

    /// Waits for this writer's turn and opens a transaction unless one is open
    /// (`BEGIN IMMEDIATE`: the write lock is taken up front).
    pub(super) async fn turn(&self, pool: &SqlitePool) -> Result<Turn, StoreError> {
        let mut guard = wait_for(&self.batch, &self.waiting).await;
        if guard.tx.is_none() {
            guard.tx = Some(begin_immediate(pool).await?);
        }
        Ok(Turn {
            guard: Some(guard),
            batch: Arc::clone(&self.batch),
            waiting: Arc::clone(&self.waiting),
        })
    }
}

/// Takes `batch`'s lock for a task that is not the leader, counted in `waiting`
/// while it waits: the leader's thread, which runs transaction after transaction
/// while scripts keep queuing, hands the lock over after the one it is in when a
/// task waits for it.
async fn wait_for(batch: &Arc<Mutex<Batch>>, waiting: &Arc<AtomicUsize>) -> OwnedMutexGuard<Batch> {
    /// Uncounts the waiter however its wait ends (it may be dropped midway).
    struct Counted<'a>(&'a AtomicUsize);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    waiting.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(waiting);
    Arc::clone(batch).lock_owned().await
}

/// One writer's turn: [`savepoint`](Turn::savepoint) for its statements, then
/// [`finish`](Turn::finish) or [`abandon`](Turn::abandon).
pub(super) struct Turn {
    guard: Option<OwnedMutexGuard<Batch>>,
    batch: Arc<Mutex<Batch>>,
    waiting: Arc<AtomicUsize>,
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
            waiting: Arc::clone(&self.waiting),
            done,
        };
        let guard = wait_for(&self.batch, &self.waiting).await;
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
    waiting: Arc<AtomicUsize>,
    done: watch::Receiver<Outcome>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let done = self.done.clone();
        let waiting = Arc::clone(&self.waiting);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let guard = wait_for(&batch, &waiting).await;
                if done.borrow().is_none() {
                    let _ = commit(guard).await;
                }
            });
        }
    }
}

/// One value bound to a [`Script`]. Text is shared: a script binds the same value
/// (a tenant, an id) in several of its statements.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Text(Arc<str>),
    Int(i64),
    Null,
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.into())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s.into())
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

/// Statements that run one after another: a savepoint, then those
/// [`push`](Script::push)ed, in order.
#[derive(Debug)]
pub(super) struct Script {
    /// The statements' text, separated by `; `, with unnamed parameters.
    sql: String,
    /// The values of the parameters, in the order they appear in `sql`.
    args: Vec<Arg>,
    /// Each statement: where its text is in `sql`, and how many of `args` it binds.
    parts: Vec<(Range<usize>, usize)>,
    /// The statements that are [checks](Script::check), by index, each with where
    /// its condition's `SELECT` begins in `sql`.
    checks: Vec<(usize, usize)>,
    /// The statements that are conditions of [`unless`](Script::unless), by index,
    /// each with the index of the first statement after those it may skip.
    skips: Vec<(usize, usize)>,
}

/// What a statement of a [`Script`] is, as [`Script::statement_texts`] tells it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind<'s> {
    /// A statement to run.
    Plain,
    /// A [check](Script::check): its condition's `SELECT`.
    Check(&'s str),
    /// The condition of [`unless`](Script::unless) (`SELECT` and an expression)
    /// and the index of the first statement after those it skips when it holds.
    Unless(&'s str, usize),
}

/// What one statement of a [`Script`] answered.
#[derive(Debug, Default)]
pub(super) struct Done {
    /// It did not run: an [`unless`](Script::unless) condition held.
    pub(super) skipped: bool,
    /// The first column of each row it returned, when that is text (the
    /// statements whose rows matter return one text column).
    pub(super) rows: Vec<Option<String>>,
    /// The rows it inserted, updated or deleted (SQLite's `changes()`: for a
    /// statement that writes no row, what the last one that did wrote).
    pub(super) changes: u64,
}

/// The statement of a [`Script`] that failed, and why; the statements after it did
/// not run.
#[derive(Debug)]
pub(super) struct Failed {
    /// Its index among the script's statements.
    pub(super) statement: usize,
    /// What SQLite answered.
    pub(super) error: DbError,
}

impl Failed {
    /// Whether a [`Script::check`] stopped the script, rather than a failure.
    pub(super) fn is_refusal(&self) -> bool {
        self.error.message().is_some_and(|m| m.contains(REFUSED))
    }

    /// The failure as the store reports it, keeping its cause.
    pub(super) fn into_store_error(self) -> StoreError {
        StoreError::backend(self.error)
    }
}

/// An error of the connection the leader writes on: the pool's (an in-memory
/// database) or its own.
#[derive(Debug)]
pub(super) enum DbError {
    Pooled(sqlx::Error),
    Own(rusqlite::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Pooled(e) => e.fmt(f),
            DbError::Own(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Pooled(e) => Some(e),
            DbError::Own(e) => Some(e),
        }
    }
}

impl DbError {
    /// SQLite's message, when SQLite answered one.
    fn message(&self) -> Option<&str> {
        match self {
            DbError::Pooled(e) => e.as_database_error().map(|d| d.message()),
            DbError::Own(rusqlite::Error::SqliteFailure(_, message)) => message.as_deref(),
            DbError::Own(_) => None,
        }
    }

    /// Whether SQLite answered `SQLITE_BUSY` or `SQLITE_LOCKED`.
    fn is_busy(&self) -> bool {
        match self {
            DbError::Pooled(e) => is_busy(e),
            DbError::Own(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
        }
    }

    /// Whether a unique index refused the statement.
    pub(super) fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Pooled(e) => super::is_unique_violation(e),
            DbError::Own(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            DbError::Own(_) => false,
        }
    }
}

impl Script {
    /// A script that opens its savepoint.
    pub(super) fn new() -> Self {
        Script {
            sql: SAVEPOINT.to_owned(),
            args: Vec::new(),
            parts: vec![(0..SAVEPOINT.len(), 0)],
            checks: Vec::new(),
            skips: Vec::new(),
        }
    }

    /// How many statements it has, its savepoint included.
    fn statements(&self) -> usize {
        self.parts.len()
    }

    /// Appends `sql`, one statement or several separated by `;` (neither `;` nor
    /// `?` appears inside a literal), whose numbered parameters (`?1`, `?2` …) refer
    /// to `args`; returns the indexes of its statements among the script's answers.
    ///
    /// The parameters are rewritten as unnamed ones, each bound to its value in the
    /// order they appear, so that the script's whole text (which an in-memory
    /// database runs in one call) binds its arguments in turn.
    ///
    /// # Errors
    /// A backend error if `sql` names a parameter beyond `args` (a bug).
    pub(super) fn push(&mut self, sql: &str, args: &[Arg]) -> Result<Range<usize>, StoreError> {
        let first = self.statements();
        self.sql.reserve(sql.len() + 2);
        self.sql.push_str("; ");
        let mut from = self.sql.len();
        let mut bound = 0;
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
                self.parts.push((from..self.sql.len(), bound));
                self.sql.push(';');
                let skipped = after.len() - after.trim_start().len();
                self.sql.push_str(&after[..skipped]);
                from = self.sql.len();
                bound = 0;
                rest = &after[skipped..];
                continue;
            }
            let n: usize = after[..digits].parse().unwrap_or(0);
            let arg = n.checked_sub(1).and_then(|i| args.get(i)).ok_or_else(|| {
                StoreError::backend(format!("parameter ?{n} of a script has no value"))
            })?;
            self.args.push(arg.clone());
            bound += 1;
            self.sql.push('?');
            rest = &after[digits..];
        }
        self.sql.push_str(rest);
        self.parts.push((from..self.sql.len(), bound));
        Ok(first..self.statements())
    }

    /// Appends a check: `condition` (an SQL expression, with numbered parameters
    /// as in [`push`](Script::push)) must be true, else the script stops here,
    /// refused ([`Failed::is_refusal`]). Returns the check's index.
    ///
    /// In the script's whole text (which an in-memory database runs in one call)
    /// the check is an insert into the view [`CHECKS`] makes, which refuses a
    /// false value; the leader's own connection selects the condition and judges
    /// it itself, which spares SQLite the temporary table it builds for each
    /// insert into a view.
    pub(super) fn check(&mut self, condition: &str, args: &[Arg]) -> Result<usize, StoreError> {
        const INSERT: &str = "INSERT INTO temp.scim_check (ok) ";
        let sql = format!("{INSERT}SELECT {condition}");
        let at = self.push(&sql, args)?.start;
        let select = self.parts.get(at).map_or(0, |(text, _)| text.start) + INSERT.len();
        self.checks.push((at, select));
        Ok(at)
    }

    /// Appends the statements `then` pushes, to be skipped when `condition` (an
    /// SQL expression, with numbered parameters as in [`push`](Script::push))
    /// holds, for a script whose answers are the same whether they run or not
    /// (they would change nothing). Their answers are then marked
    /// [`skipped`](Done::skipped). A false or unknown (NULL) condition skips
    /// nothing.
    ///
    /// The leader's own connection judges the condition; in the script's whole
    /// text (which an in-memory database runs in one call) the condition is a
    /// `SELECT` whose answer nothing reads, and the statements run.
    pub(super) fn unless<T>(
        &mut self,
        condition: &str,
        args: &[Arg],
        then: impl FnOnce(&mut Script) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let at = self.push(&format!("SELECT {condition}"), args)?.start;
        let out = then(self)?;
        self.skips.push((at, self.statements()));
        Ok(out)
    }

    /// Each statement's text, the arguments it binds and what it is, in order.
    fn statement_texts(&self) -> impl Iterator<Item = (&str, &[Arg], Kind<'_>)> {
        let mut at = 0;
        self.parts.iter().enumerate().map(move |(i, (text, n))| {
            let args = self.args.get(at..at + n).unwrap_or_default();
            at += n;
            let sql = self.sql.get(text.clone()).unwrap_or_default();
            let check = self
                .checks
                .iter()
                .find(|(c, _)| *c == i)
                .and_then(|(_, from)| self.sql.get(*from..text.end));
            let kind = match (check, self.skips.iter().find(|(u, _)| *u == i)) {
                (Some(select), _) => Kind::Check(select),
                (None, Some((_, end))) => Kind::Unless(sql, *end),
                (None, None) => Kind::Plain,
            };
            (sql, args, kind)
        })
    }
}

/// A connection the leader runs scripts on, from a thread that may block.
trait Session {
    /// Runs `sql`, statements without parameters.
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;

    /// Runs `script`: the answers of its statements that completed, and the
    /// failure that stopped the rest, if one did.
    fn run(&mut self, script: &Script) -> (Vec<Done>, Option<DbError>);
}

/// The leader's own connection, driven directly: each statement prepared once
/// and kept.
impl Session for rusqlite::Connection {
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.execute_batch(sql).map_err(DbError::Own)
    }

    fn run(&mut self, script: &Script) -> (Vec<Done>, Option<DbError>) {
        let mut answers = Vec::with_capacity(script.statements());
        let mut skip_to = 0;
        for (i, (sql, args, kind)) in script.statement_texts().enumerate() {
            if i < skip_to {
                answers.push(Done {
                    skipped: true,
                    ..Done::default()
                });
                continue;
            }
            let done = match kind {
                Kind::Check(select) => holds(self, select, args),
                Kind::Unless(select, end) => truth(self, select, args).map(|t| {
                    if t == Some(true) {
                        skip_to = end;
                    }
                    Done::default()
                }),
                Kind::Plain => statement(self, sql, args),
            };
            match done {
                Ok(done) => answers.push(done),
                Err(e) => return (answers, Some(DbError::Own(e))),
            }
        }
        (answers, None)
    }
}

/// Runs one statement of a script on `conn`.
fn statement(conn: &rusqlite::Connection, sql: &str, args: &[Arg]) -> rusqlite::Result<Done> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let mut rows = Vec::new();
    let mut cursor = stmt.raw_query();
    while let Some(row) = cursor.next()? {
        rows.push(match row.get_ref(0) {
            Ok(ValueRef::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        });
    }
    drop(cursor);
    Ok(Done {
        rows,
        changes: conn.changes(),
        skipped: false,
    })
}

/// Runs a check's condition (`SELECT` and an expression) on `conn`: no change,
/// or the error by which a refusing check stops its script.
fn holds(conn: &rusqlite::Connection, select: &str, args: &[Arg]) -> rusqlite::Result<Done> {
    // As the view's trigger judges (`WHEN NOT NEW.ok`): false refuses, while
    // unknown (NULL), like a CHECK constraint, does not.
    match truth(conn, select, args)? {
        Some(false) => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some(REFUSED.to_owned()),
        )),
        Some(true) | None => Ok(Done::default()),
    }
}

/// The truth of a condition (`SELECT` and an expression) on `conn`, as SQLite
/// judges a value in a `WHERE`: `None` when it is unknown (NULL, or no row).
fn truth(
    conn: &rusqlite::Connection,
    select: &str,
    args: &[Arg],
) -> rusqlite::Result<Option<bool>> {
    let mut stmt = conn.prepare_cached(select)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    Ok(match rows.next()? {
        Some(row) => match row.get_ref(0)? {
            ValueRef::Null => None,
            ValueRef::Integer(n) => Some(n != 0),
            ValueRef::Real(r) => Some(r != 0.0),
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(
                String::from_utf8_lossy(t)
                    .trim()
                    .parse::<f64>()
                    .is_ok_and(|r| r != 0.0),
            ),
        },
        None => None,
    })
}

/// Binds `args` to `stmt`'s parameters, in order.
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, args: &[Arg]) -> rusqlite::Result<()> {
    if stmt.parameter_count() != args.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            args.len(),
            stmt.parameter_count(),
        ));
    }
    for (i, arg) in args.iter().enumerate() {
        match arg {
            Arg::Text(s) => stmt.raw_bind_parameter(i + 1, &**s)?,
            Arg::Int(n) => stmt.raw_bind_parameter(i + 1, *n)?,
            Arg::Null => stmt.raw_bind_parameter(i + 1, rusqlite::types::Null)?,
        }
    }
    Ok(())
}

/// What keeps the WAL of a database file from growing without bound.
///
/// SQLite checkpoints by itself when a commit leaves the WAL 1,000 pages long
/// (PASSIVE: it copies what no reader still needs into the database file, and waits
/// for nothing), and the next writer starts the WAL over once every frame was
/// copied and no reader still uses one. A server whose readers overlap without a
/// pause, as under steady load or beside a reader that takes its time, gives it
/// neither moment: the WAL grows with every commit (at 35 MB/s under this crate's
/// write benchmark, with two readers beside it), every read looks up pages among
/// more frames, and the file keeps its size after the load is gone (the "checkpoint
/// starvation" of SQLite's "Write-Ahead Logging", section "Avoiding Excessively
/// Large WAL Files", <https://www.sqlite.org/wal.html>). So after its commits, at
/// most every [`WAL_LOOK`], a writer looks at the WAL's size, and past
/// [`WAL_LIMIT`] it runs a checkpoint that truncates it (`TRUNCATE`, which waits
/// for readers to leave the WAL, [`briefly`]). Readers that stay longer keep the
/// WAL as it is, and the next try is [`WAL_RETRY`] later.
#[derive(Debug, Clone)]
struct WalBound {
    /// The database file, for the leader's own connection when a pooled writer
    /// truncates the WAL.
    db: PathBuf,
    /// The WAL: the name of the file the database's path leads to (SQLite follows
    /// symbolic links), and `-wal`.
    wal: PathBuf,
    /// When its size is looked at next.
    next: Instant,
}

impl WalBound {
    fn new(db: &Path) -> Self {
        let mut wal = std::fs::canonicalize(db)
            .unwrap_or_else(|_| db.to_owned())
            .into_os_string();
        wal.push("-wal");
        WalBound {
            db: db.to_owned(),
            wal: wal.into(),
            next: Instant::now(),
        }
    }

    /// Whether the WAL's size is to be looked at now (then not again before
    /// [`WAL_LOOK`]).
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + WAL_LOOK;
        true
    }

    /// After a commit on `conn`: truncates the WAL if it is due and too long.
    fn keep(&mut self, conn: &rusqlite::Connection) {
        if self.due() && !truncate_if_long(conn, &self.wal) {
            self.refused();
        }
    }

    /// Whether the WAL's size is to be looked at now and it is too long.
    fn due_and_long(&mut self) -> bool {
        self.due() && long(&self.wal)
    }

    /// Readers kept the WAL from being truncated: the next try waits.
    fn refused(&mut self) {
        self.next = Instant::now() + WAL_RETRY;
    }
}

/// Truncates the WAL at `wal`, of the database `conn` is open on (outside a
/// transaction), if it is longer than [`WAL_LIMIT`]: every frame is copied into
/// the database file, which is flushed, and the WAL is cut to nothing once no
/// reader uses it. Returns false when readers kept it (or a failure: the
/// connection's next transaction meets it). Every acknowledged commit is in the
/// database file before the WAL is cut.
fn truncate_if_long(conn: &rusqlite::Connection, wal: &Path) -> bool {
    if !long(wal) {
        return true;
    }
    if conn.busy_handler(Some(briefly)).is_err() {
        return false;
    }
    let truncated = conn
        .query_row("PRAGMA main.wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        })
        .is_ok_and(|busy| busy == 0);
    // The connection's own patience again, for its transactions.
    let _ = conn.busy_timeout(SQLITE_BUSY_WAIT);
    truncated
}

/// Whether the WAL at `wal` is longer than [`WAL_LIMIT`].
fn long(wal: &Path) -> bool {
    std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_LIMIT)
}

/// The busy handler of a checkpoint that truncates the WAL: [`WAL_WAITS`] waits of
/// [`WAL_WAIT`] for the readers (and another process's writer) it needs to move on.
/// Readers of this server take well under a millisecond each.
fn briefly(attempt: i32) -> bool {
    if attempt >= WAL_WAITS {
        return false;
    }
    std::thread::sleep(WAL_WAIT);
    true
}

/// Opens the leader's own connection to the database file `file`, which the
/// pool opened (and put in WAL mode) first, set as the pool's connections are.
fn open(file: &Path) -> Result<rusqlite::Connection, DbError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(DbError::Own)?;
    conn.busy_timeout(SQLITE_BUSY_WAIT).map_err(DbError::Own)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY",
    )
    .map_err(DbError::Own)?;
    conn.execute_batch(CHECKS).map_err(DbError::Own)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(conn)
}

/// The pool's connection in the leader's transaction, for an in-memory database:
/// driven from the leader's thread through the runtime.
struct Pooled<'c> {
    conn: &'c mut SqliteConnection,
    runtime: tokio::runtime::Handle,
}

impl Session for Pooled<'_> {
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let conn = &mut *self.conn;
        self.runtime
            .block_on(conn.execute(sql))
            .map(drop)
            .map_err(DbError::Pooled)
    }

    fn run(&mut self, script: &Script) -> (Vec<Done>, Option<DbError>) {
        let conn = &mut *self.conn;
        let (answers, failed) = self.runtime.block_on(execute(conn, script));
        let failed = failed.map(DbError::Pooled).or_else(|| {
            (answers.len() < script.statements()).then(|| {
                DbError::Pooled(sqlx::Error::Protocol(format!(
                    "a script of {} statements answered {} times",
                    script.statements(),
                    answers.len()
                )))
            })
        });
        (answers, failed)
    }
}

/// Runs `script`'s whole text on `conn`, in one call: the answers of the
/// statements that completed, and the failure that stopped the rest, if one did.
async fn execute(conn: &mut SqliteConnection, script: &Script) -> (Vec<Done>, Option<sqlx::Error>) {
    let mut query = sqlx::query(&script.sql);
    for arg in &script.args {
        query = match arg {
            Arg::Text(s) => query.bind(&**s),
            Arg::Int(i) => query.bind(*i),
            Arg::Null => query.bind(None::<i64>),
        };
    }
    let mut answers = Vec::with_capacity(script.statements());
    let mut rows = Vec::new();
    let mut stream = conn.fetch_many(query);
    while let Some(step) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        match step {
            Ok(Either::Left(done)) => answers.push(Done {
                rows: std::mem::take(&mut rows),
                changes: done.rows_affected(),
                skipped: false,
            }),
            Ok(Either::Right(row)) => rows.push(row.try_get::<String, _>(0).ok()),
            Err(e) => return (answers, Some(e)),
        }
    }
    (answers, None)
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
        let (lead, parked) = {
            let mut queue = self.scripts.lock().unwrap_or_else(PoisonError::into_inner);
            queue.jobs.push_back(job);
            (
                !std::mem::replace(&mut queue.leading, true),
                queue.parked.take(),
            )
        };
        if let Some(leader) = parked {
            leader.unpark();
        }
        if lead {
            let leader = Leader {
                writers: Writers {
                    batch: Arc::clone(&self.batch),
                    waiting: Arc::clone(&self.waiting),
                    scripts: Arc::clone(&self.scripts),
                    file: self.file.clone(),
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
}

/// The queue of scripts, as the leader's thread sees it.
type Scripts = Arc<std::sync::Mutex<Queue>>;

/// Takes at most `room` of the queued jobs.
fn take(scripts: &Scripts, room: usize) -> VecDeque<Job> {
    let mut queue = scripts.lock().unwrap_or_else(PoisonError::into_inner);
    let n = room.min(queue.jobs.len());
    queue.jobs.drain(..n).collect()
}

/// Whether scripts are queued, waiting up to [`LINGER`] for one if none is: the
/// writers answered by the last commit are on their way back with their next
/// writes, and a leader that waits for them on its thread is woken by the first
/// (one hop) rather than started again through the runtime (two).
fn more(scripts: &Scripts) -> bool {
    {
        let mut queue = scripts.lock().unwrap_or_else(PoisonError::into_inner);
        if !queue.jobs.is_empty() {
            return true;
        }
        queue.parked = Some(std::thread::current());
    }
    std::thread::park_timeout(LINGER);
    let mut queue = scripts.lock().unwrap_or_else(PoisonError::into_inner);
    queue.parked = None;
    !queue.jobs.is_empty()
}

/// Puts jobs that did not run back at the head of the queue.
fn requeue(scripts: &Scripts, jobs: impl DoubleEndedIterator<Item = Job>) {
    let mut queue = scripts.lock().unwrap_or_else(PoisonError::into_inner);
    for job in jobs.rev() {
        queue.jobs.push_front(job);
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
            let outcome = match &self.writers.file {
                Some(file) => {
                    // On a thread that may block, to the end even if this task is
                    // dropped meanwhile (then the connection is closed, which rolls
                    // back what is open). After an error the connection's state is
                    // unknown: it is closed, and a new one opened next time.
                    let own = guard.own.take();
                    // A copy: the lock's own stays if this task is dropped midway.
                    let mut wal = guard.wal.clone();
                    let file = file.clone();
                    let scripts = Arc::clone(&self.writers.scripts);
                    let waiting = Arc::clone(&self.writers.waiting);
                    let run = tokio::task::spawn_blocking(move || {
                        let led = match own {
                            Some(conn) => Ok(conn),
                            None => open(&file).map_err(StoreError::backend),
                        }
                        .and_then(|mut conn| {
                            lead_on(&mut conn, &scripts, &waiting, wal.as_mut())?;
                            Ok(conn)
                        });
                        (led, wal)
                    });
                    match run.await {
                        Ok((led, wal)) => {
                            guard.wal = wal;
                            led.map(|conn| guard.own = Some(conn))
                        }
                        Err(e) => Err(StoreError::backend(e)),
                    }
                }
                None => self.pooled_cycle().await,
            };
            drop(guard);
            if let Err(e) = outcome {
                // Every queued script is told, rather than waiting for a
                // transaction that may never open.
                let shared = Arc::new(e);
                for job in take(&self.writers.scripts, usize::MAX) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::backend(Shared(Arc::clone(&shared)))));
                }
            }
        }
    }

    /// [`cycle`] for an in-memory database, whose pool's one connection is the
    /// database: a pooled transaction, which sqlx rolls back if this task stops
    /// midway, marked before the first script runs in it.
    async fn pooled_cycle(&self) -> Result<(), StoreError> {
        let tx = begin_immediate(&self.pool).await?;
        let scripts = Arc::clone(&self.writers.scripts);
        let runtime = tokio::runtime::Handle::current();
        let run = tokio::task::spawn_blocking(move || {
            let mut tx = tx;
            let mut session = Pooled {
                conn: &mut tx,
                runtime,
            };
            let mut open = false;
            let mut kept = Vec::new();
            let filled = fill(&mut session, MARK, &scripts, &mut open, &mut kept);
            (tx, kept, filled)
        });
        let (mut tx, kept, filled) = run.await.map_err(StoreError::backend)?;
        let outcome = match filled {
            // The mark could not be set: nothing ran.
            Err(Stop::Begin(e)) => return Err(StoreError::backend(e)),
            Err(Stop::Broken(e)) => Err(e),
            Ok(()) if kept.is_empty() => tx.rollback().await.map_err(DbError::Pooled),
            Ok(()) => match tx.execute(RELEASE_MARK).await {
                Ok(_) => tx.commit().await,
                Err(e) => Err(e),
            }
            .map_err(DbError::Pooled),
        };
        tell(kept, outcome);
        Ok(())
    }
}

/// Transactions on the leader's own connection `conn`, one after another while
/// scripts queue, without a hop back to the runtime in between (each hop costs
/// two thread wake-ups), until the queue stays empty or a task other than the
/// leader waits for the batch lock (`waiting`, see [`wait_for`]): a writer that
/// takes turns gets its turn after the transaction under way. After [`STINT`] the
/// thread hands back all the same, which leaves the write lock free for a moment to
/// writers outside the queue (the pool's own writes, other processes, which wait in
/// SQLite's busy handler) and lets a runtime that shuts down end its leader.
fn lead_on(
    conn: &mut rusqlite::Connection,
    scripts: &Scripts,
    waiting: &AtomicUsize,
    mut wal: Option<&mut WalBound>,
) -> Result<(), StoreError> {
    let began = Instant::now();
    loop {
        cycle(conn, scripts)?;
        if let Some(wal) = &mut wal {
            wal.keep(conn);
        }
        if waiting.load(Ordering::SeqCst) > 0 || began.elapsed() >= STINT || !more(scripts) {
            return Ok(());
        }
    }
}

/// One transaction on the leader's own connection `conn`: it opens it (`BEGIN
/// IMMEDIATE`, waiting for the write lock as [`begin_immediate`] does), runs the
/// queued scripts and commits those that stand, telling each how it went. After an
/// error (the transaction broke, or the write lock stayed another process's beyond
/// the retries) the caller closes `conn`; the scripts it carried were told.
fn cycle(conn: &mut rusqlite::Connection, scripts: &Scripts) -> Result<(), StoreError> {
    let mut kept = Vec::new();
    let mut open = false;
    let mut attempt = 0;
    let broken = loop {
        match fill(conn, BEGIN, scripts, &mut open, &mut kept) {
            Ok(()) => break None,
            // The write lock is another process's beyond the busy timeout.
            Err(Stop::Begin(e)) if attempt < 3 && e.is_busy() => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50 << attempt));
            }
            // Nothing is open, and the scripts went back to the queue.
            Err(Stop::Begin(e)) => return Err(StoreError::backend(e)),
            Err(Stop::Broken(e)) => break Some(e),
        }
    };
    if !open {
        return Ok(());
    }
    let outcome = match broken {
        Some(cause) => Err(cause),
        None if kept.is_empty() => conn.batch("ROLLBACK"),
        None => conn.batch(COMMIT),
    };
    let failed = outcome.is_err();
    tell(kept, outcome);
    if failed && !conn.is_autocommit() {
        // Rolled back whole, if it can be; else the caller closes `conn`.
        conn.batch("ROLLBACK").map_err(StoreError::backend)?;
    }
    Ok(())
}

/// Runs queued scripts in the leader's transaction on `session` until none is
/// queued or [`MAX_BATCH`] were taken, opening the transaction with `begin` before
/// the first unless it is `open`. Scripts that stand go to `kept`; the others are
/// told and leave no trace; scripts that did not get to run go back to the queue.
fn fill(
    session: &mut impl Session,
    begin: &str,
    scripts: &Scripts,
    open: &mut bool,
    kept: &mut Vec<Kept>,
) -> Result<(), Stop> {
    // Refused scripts count as much as those that stand: a cycle ends, and
    // releases the write lock, however many are refused.
    let mut taken = 0;
    while taken < MAX_BATCH {
        let mut jobs = take(scripts, MAX_BATCH - taken);
        if jobs.is_empty() {
            break;
        }
        taken += jobs.len();
        while let Some(job) = jobs.pop_front() {
            if !*open {
                if let Err(e) = session.batch(begin) {
                    requeue(scripts, std::iter::once(job).chain(jobs));
                    return Err(Stop::Begin(e));
                }
                *open = true;
            }
            let (answers, failed) = session.run(&job.script);
            if settle(job, answers, failed, kept) {
                if let Err(e) = session.batch(UNDO) {
                    requeue(scripts, jobs.into_iter());
                    return Err(Stop::Broken(e));
                }
            }
        }
    }
    Ok(())
}

/// Why [`fill`] stopped.
enum Stop {
    /// The transaction could not be opened; nothing ran.
    Begin(DbError),
    /// The transaction can no longer be trusted (a savepoint could not be rolled
    /// back).
    Broken(DbError),
}

/// What opens the leader's transaction on its own connection: the write lock is
/// taken up front, and the transaction marked with [`MARK`].
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

/// Judges one job from its statements' answers (and the failure that stopped
/// them): a job that stands goes to `kept`, to be told after the commit; one that
/// does not is told now. Returns whether its savepoint is to be rolled back (it
/// does not stand, and its savepoint opened).
fn settle(job: Job, answers: Vec<Done>, failed: Option<DbError>, kept: &mut Vec<Kept>) -> bool {
    let opened = !answers.is_empty();
    let complete = failed.is_none();
    let stopped = failed.map(|error| Failed {
        statement: answers.len(),
        error,
    });
    let verdict = match (job.keep)(answers, stopped) {
        Ok(value) if complete => {
            kept.push(Kept {
                value,
                committed: job.committed,
                reply: job.reply,
            });
            return false;
        }
        Ok(_) => Err(StoreError::backend(
            "a write was refused by its own check, and its answers did not say why",
        )),
        Err(e) => Err(e),
    };
    let _ = job.reply.send(verdict);
    opened
}

/// Tells the kept scripts of a transaction how its commit went.
fn tell(kept: Vec<Kept>, outcome: Result<(), DbError>) {
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
                Arg::Text(s) => s.to_string(),
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
        assert_eq!(script.statements(), 5);
        assert_eq!(
            script.sql,
            "SAVEPOINT scim_op; UPDATE t SET a = ?, b = ? WHERE k = ? AND v = ?; \
             DELETE FROM u WHERE k = ?; SELECT ?, 'a' FROM u; INSERT INTO u VALUES (?)"
        );
        assert_eq!(
            texts(&script),
            ["200", "1100", "100", "200", "x", "z", "NULL"]
        );
        // Statement by statement, as the leader's own connection runs them.
        let statements: Vec<(&str, usize)> = script
            .statement_texts()
            .map(|(sql, args, _)| (sql, args.len()))
            .collect();
        assert_eq!(
            statements,
            [
                ("SAVEPOINT scim_op", 0),
                ("UPDATE t SET a = ?, b = ? WHERE k = ? AND v = ?", 4),
                ("DELETE FROM u WHERE k = ?", 1),
                ("SELECT ?, 'a' FROM u", 1),
                ("INSERT INTO u VALUES (?)", 1),
            ]
        );
    }

    /// A job whose `keep` stands when its script ran whole, and otherwise says
    /// how it stopped; and the receiver of its answer.
    fn job(script: Script) -> (Job, oneshot::Receiver<Result<Value, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            script,
            keep: Box::new(|answers, failed| match failed {
                None => Ok(Box::new(answers.len()) as Value),
                Some(f) if f.is_refusal() => {
                    Err(StoreError::Conflict(format!("refused at {}", f.statement)))
                }
                Some(f) if f.error.is_unique_violation() => {
                    Err(StoreError::Conflict(format!("taken at {}", f.statement)))
                }
                Some(f) => Err(f.into_store_error()),
            }),
            committed: Box::new(|| ()),
            reply,
        };
        (job, answer)
    }

    fn insert(k: i64, refuse: bool) -> Script {
        let mut script = Script::new();
        script
            .push(
                "INSERT INTO t (k) VALUES (?1); SELECT 'x' || ?1",
                &[Arg::Int(k)],
            )
            .expect("push");
        if refuse {
            script.check("?1 < 0", &[Arg::Int(k)]).expect("check");
        }
        script
    }

    fn connection() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(CHECKS).expect("checks");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .expect("table");
        conn
    }

    fn keys(conn: &rusqlite::Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT k FROM t ORDER BY k").expect("select");
        stmt.query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn told(answer: &mut oneshot::Receiver<Result<Value, StoreError>>) -> Result<usize, String> {
        match answer.try_recv() {
            Ok(Ok(v)) => v.downcast::<usize>().map(|v| *v).map_err(|_| "type".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("not told".into()),
        }
    }

    #[test]
    fn scripts_that_fail_or_refuse_leave_no_trace_and_the_others_commit_together() {
        let mut conn = connection();
        let scripts: Scripts = Arc::default();
        let mut answers = Vec::new();
        for script in [
            insert(1, false),
            insert(2, true),
            insert(1, false),
            insert(3, false),
        ] {
            let (job, answer) = job(script);
            scripts.lock().expect("queue").jobs.push_back(job);
            answers.push(answer);
        }
        let (mut open, mut kept) = (false, Vec::new());
        assert!(fill(&mut conn, BEGIN, &scripts, &mut open, &mut kept).is_ok());
        assert!(open && !conn.is_autocommit());
        assert_eq!(kept.len(), 2);
        // The refused and the failed are told at once, the others after the commit.
        assert_eq!(told(&mut answers[1]), Err("refused at 3".into()));
        assert_eq!(told(&mut answers[2]), Err("taken at 1".into()));
        assert_eq!(told(&mut answers[0]), Err("not told".into()));
        conn.batch(COMMIT).expect("commit");
        tell(kept, Ok(()));
        assert_eq!(told(&mut answers[0]), Ok(3));
        assert_eq!(told(&mut answers[3]), Ok(3));
        assert!(conn.is_autocommit());
        assert_eq!(keys(&conn), [1, 3]);
    }

    #[test]
    fn a_statement_answers_its_rows_and_changes() {
        let mut conn = connection();
        let mut script = insert(7, false);
        script
            .push("UPDATE t SET k = k + 1 WHERE k >= ?1", &[Arg::Int(0)])
            .expect("push");
        let (answers, failed) = conn.run(&script);
        assert!(failed.is_none());
        let seen: Vec<(usize, u64)> = answers.iter().map(|d| (d.rows.len(), d.changes)).collect();
        assert_eq!(seen[1..], [(0, 1), (1, 1), (0, 1)]);
        assert_eq!(answers[2].rows, [Some("x7".to_owned())]);
        assert_eq!(keys(&conn), [8]);
    }

    #[test]
    fn a_commit_fails_when_sqlite_rolled_the_transaction_back() {
        let mut conn = connection();
        conn.batch(BEGIN).expect("begin");
        conn.batch("ROLLBACK").expect("rolled back by itself");
        assert!(conn.batch(COMMIT).is_err());
    }

    #[test]
    fn a_job_whose_savepoint_failed_has_nothing_to_undo() {
        let (j, mut answer) = job(insert(1, false));
        let mut kept = Vec::new();
        let error = DbError::Pooled(sqlx::Error::Protocol("stop".into()));
        assert!(!settle(j, Vec::new(), Some(error), &mut kept));
        assert!(kept.is_empty());
        assert!(told(&mut answer).is_err());
    }

    #[test]
    fn a_check_refuses_with_the_message_a_refusal_is_told_by() {
        assert!(CHECKS.contains(&format!("RAISE(ABORT, '{REFUSED}')")));
    }

    #[test]
    fn a_check_judges_alike_in_the_scripts_text_and_on_the_leaders_connection() {
        for (k, holds) in [
            (Arg::Int(-1), true),
            (Arg::Int(1), false),
            (Arg::Int(0), false),
            (Arg::Null, true),
        ] {
            let mut script = Script::new();
            script.push("SELECT ?1", &[Arg::Int(7)]).expect("push");
            let at = script
                .check("?1 < 0", std::slice::from_ref(&k))
                .expect("check");
            assert_eq!(at, 2);
            let statements: Vec<_> = script.statement_texts().collect();
            assert_eq!(
                statements[2].0,
                "INSERT INTO temp.scim_check (ok) SELECT ? < 0"
            );
            assert_eq!(statements[2].2, Kind::Check("SELECT ? < 0"));
            assert_eq!(statements[1].2, Kind::Plain);
            // The leader's own connection judges the condition itself ...
            let mut own = connection();
            let (answers, failed) = own.run(&script);
            let refused = failed.map(|error| Failed {
                statement: answers.len(),
                error,
            });
            assert_eq!(answers.len(), if holds { 3 } else { 2 });
            assert_eq!(refused.as_ref().is_some_and(Failed::is_refusal), !holds);
            // ... as the script's text does through its view.
            let value = match k {
                Arg::Int(n) => n.to_string(),
                _ => "NULL".to_owned(),
            };
            let text = own.execute_batch(&format!(
                "INSERT INTO temp.scim_check (ok) SELECT {value} < 0"
            ));
            assert_eq!(text.is_ok(), holds);
            if let Err(e) = text {
                assert!(e.to_string().contains(REFUSED));
            }
        }
    }

    /// A script that inserts 5 unless its condition (`?1`, bound to `k`) holds,
    /// then 6; the indexes of the statements that may be skipped.
    fn insert_unless(k: &Arg) -> (Script, Range<usize>) {
        let mut script = Script::new();
        let skippable = script
            .unless("?1", std::slice::from_ref(k), |s| {
                s.push("INSERT INTO t (k) VALUES (?1); SELECT 'x'", &[Arg::Int(5)])
            })
            .expect("unless");
        script
            .push("INSERT INTO t (k) VALUES (?1)", &[Arg::Int(6)])
            .expect("push");
        (script, skippable)
    }

    #[test]
    fn unless_skips_its_statements_on_the_leaders_connection_when_its_condition_holds() {
        for (k, skips) in [
            (Arg::Int(1), true),
            (Arg::Text("2".into()), true),
            (Arg::Int(0), false),
            (Arg::Text("no".into()), false),
            (Arg::Null, false),
        ] {
            let (script, skippable) = insert_unless(&k);
            assert_eq!(skippable, 2..4);
            let statements: Vec<_> = script.statement_texts().collect();
            assert_eq!(statements[1].2, Kind::Unless("SELECT ?", 4));
            let mut own = connection();
            let (answers, failed) = own.run(&script);
            assert!(failed.is_none(), "{k:?}");
            let skipped: Vec<bool> = answers.iter().map(|d| d.skipped).collect();
            assert_eq!(skipped, [false, false, skips, skips, false], "{k:?}");
            assert_eq!(answers[3].rows.len(), usize::from(!skips), "{k:?}");
            assert_eq!(keys(&own), if skips { vec![6] } else { vec![5, 6] });
        }
    }

    #[tokio::test]
    async fn unless_runs_every_statement_in_the_scripts_text() {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("open");
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .await
            .expect("table");
        let (script, _) = insert_unless(&Arg::Int(1));
        let (answers, failed) = execute(&mut conn, &script).await;
        assert!(failed.is_none(), "{failed:?}");
        assert_eq!(answers.len(), 5);
        assert!(answers.iter().all(|d| !d.skipped));
        let keys: Vec<i64> = sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(&mut conn)
            .await
            .expect("keys");
        assert_eq!(keys, [5, 6]);
    }

    /// A job that inserts `k` and, once committed, queues the job for `k + 1`,
    /// up to `last`: scripts that keep coming while the leader runs.
    fn chained(scripts: &Scripts, k: i64, last: i64) -> Job {
        let (mut job, _) = job(insert(k, false));
        let queue = Arc::clone(scripts);
        job.committed = Box::new(move || {
            if k < last {
                let next = chained(&queue, k + 1, last);
                queue.lock().expect("queue").jobs.push_back(next);
            }
        });
        job
    }

    #[tokio::test]
    async fn a_task_is_counted_while_it_waits_for_the_batch_lock_and_no_longer() {
        let writers = Writers::new(None);
        let held = Arc::clone(&writers.batch).lock_owned().await;
        let mut wait = Box::pin(wait_for(&writers.batch, &writers.waiting));
        assert!(futures_poll_once(wait.as_mut()).await.is_none());
        assert_eq!(writers.waiting.load(Ordering::SeqCst), 1);
        // Dropped midway: uncounted.
        drop(wait);
        assert_eq!(writers.waiting.load(Ordering::SeqCst), 0);
        // Given the lock: uncounted as well.
        let wait = wait_for(&writers.batch, &writers.waiting);
        drop(held);
        let _guard = wait.await;
        assert_eq!(writers.waiting.load(Ordering::SeqCst), 0);
    }

    /// Polls `fut` once: its output if it is ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
        poll_fn(|cx| {
            std::task::Poll::Ready(match Pin::new(&mut fut).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    /// A resource's claims, run on the leader's connection, are skipped exactly when
    /// it owns the values it names and no other.
    #[test]
    fn claims_are_skipped_when_the_resource_owns_exactly_the_values_it_names() {
        use scimkit::store::UniqueValue;
        let value = |attribute: &str, value: &str| UniqueValue {
            attribute: attribute.to_owned(),
            value: value.to_owned(),
        };
        let named = [value("userName", "a"), value("emails", "x")];
        for (owned, skipped) in [
            (vec![("userName", "a"), ("emails", "x")], true),
            (vec![("userName", "a")], false),
            (
                vec![("userName", "a"), ("emails", "x"), ("emails", "y")],
                false,
            ),
            (vec![("userName", "A"), ("emails", "x")], false),
            (vec![("userName", "a"), ("emails", "X")], false),
        ] {
            let mut conn = owning(&owned);
            // Another resource's values, and the same values in another tenant.
            conn.execute_batch(
                "INSERT INTO scim_unique VALUES ('t', 'User', 'userName', 'b', 's'); \
                 INSERT INTO scim_unique VALUES ('u', 'User', 'emails', 'y', 'r')",
            )
            .expect("others");
            let mut script = Script::new();
            let at = super::super::claim_script(&mut script, "t", "User", "r", &named, true)
                .expect("claims");
            let (answers, failed) = conn.run(&script);
            assert!(failed.is_none(), "{owned:?}: {failed:?}");
            assert_eq!(answers[at.clone()][0].skipped, skipped, "{owned:?}");
            assert!(super::super::claims_held(&named, &answers, at).is_ok());
            // Skipped or not, the resource owns exactly the values it names.
            assert_eq!(owned_by_r(&conn), ["emails=x", "userName=a"], "{owned:?}");
        }
    }

    /// A connection with `scim_unique`, in which resource `r` of tenant `t` owns
    /// `owned`.
    fn owning(owned: &[(&str, &str)]) -> rusqlite::Connection {
        let conn = connection();
        conn.execute_batch(
            "CREATE TABLE scim_unique (tenant TEXT NOT NULL, resource_type TEXT NOT NULL, \
             attribute TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL, \
             PRIMARY KEY (tenant, resource_type, attribute, value)) WITHOUT ROWID; \
             CREATE INDEX scim_unique_owner ON scim_unique (tenant, resource_type, id)",
        )
        .expect("table");
        for (attribute, v) in owned {
            conn.execute(
                "INSERT INTO scim_unique VALUES ('t', 'User', ?1, ?2, 'r')",
                [attribute, v],
            )
            .expect("owned");
        }
        conn
    }

    /// What resource `r` of tenant `t` owns, as `attribute=value`, in order.
    fn owned_by_r(conn: &rusqlite::Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT attribute || '=' || value FROM scim_unique \
                 WHERE tenant = 't' AND id = 'r' ORDER BY 1",
            )
            .expect("select");
        stmt.query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Claims of more values than the texts built once cover (a host with many
    /// unique attributes) run the same way: skipped when nothing changes, else
    /// released and claimed anew; on a create, claimed.
    #[test]
    fn claims_of_many_values_are_skipped_or_run_like_those_of_a_few() {
        use scimkit::store::UniqueValue;
        let names: Vec<String> = (0..=super::super::CACHED_CLAIMS + 1)
            .map(|i| format!("a{i}"))
            .collect();
        let named: Vec<UniqueValue> = names
            .iter()
            .map(|n| UniqueValue {
                attribute: n.clone(),
                value: "v".to_owned(),
            })
            .collect();
        let all: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        for (owned, skipped) in [(&all[..], true), (&all[1..], false), (&[][..], false)] {
            let mut conn = owning(owned);
            let mut script = Script::new();
            let at = super::super::claim_script(&mut script, "t", "User", "r", &named, true)
                .expect("claims");
            let (answers, failed) = conn.run(&script);
            assert!(failed.is_none(), "{owned:?}: {failed:?}");
            assert_eq!(answers[at.clone()][0].skipped, skipped, "{owned:?}");
            assert!(super::super::claims_held(&named, &answers, at).is_ok());
            let expected: Vec<String> = names.iter().map(|n| format!("{n}=v")).collect();
            assert_eq!(owned_by_r(&conn), expected, "{owned:?}");
        }
        // As a create claims them: nothing to release first.
        let mut conn = owning(&[]);
        let mut script = Script::new();
        let at = super::super::claim_script(&mut script, "t", "User", "r", &named, false)
            .expect("claims");
        let (answers, failed) = conn.run(&script);
        assert!(failed.is_none(), "{failed:?}");
        assert!(super::super::claims_held(&named, &answers, at).is_ok());
        assert_eq!(owned_by_r(&conn).len(), names.len());
    }

    #[test]
    fn the_leaders_thread_runs_on_while_scripts_queue_and_hands_over_to_a_waiting_writer() {
        for waiting in [0, 1] {
            let mut conn = connection();
            let scripts: Scripts = Arc::default();
            let first = chained(&scripts, 1, 20);
            scripts.lock().expect("queue").jobs.push_back(first);
            let waiters = AtomicUsize::new(waiting);
            assert!(lead_on(&mut conn, &scripts, &waiters, None).is_ok());
            let queued = scripts.lock().expect("queue").jobs.len();
            if waiting == 0 {
                // Transaction after transaction, until no script came.
                assert_eq!(keys(&conn), (1..=20).collect::<Vec<_>>());
                assert_eq!(queued, 0);
            } else {
                // One transaction, then the lock's turn goes to the waiting writer.
                assert_eq!(keys(&conn), [1]);
                assert_eq!(queued, 1);
            }
            assert!(conn.is_autocommit());
        }
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error() {
        let mut script = Script::new();
        assert!(script.push("SELECT ?3", &[Arg::Int(1)]).is_err());
        assert!(script.push("SELECT ?0", &[Arg::Int(1)]).is_err());
        assert!(script.push("SELECT ?", &[Arg::Int(1)]).is_err());
    }
}
