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
//! [`Script`]: its savepoint and all its statements go to SQLite's worker in one
//! call ([`Writers::run`]), so it holds the write lock for one round trip.

use std::future::poll_fn;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Either, Executor, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::{StoreError, backend, begin_immediate};

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

/// This process's queue of SQLite writers and the transaction they share.
#[derive(Debug)]
pub(super) struct Writers {
    batch: Arc<Mutex<Batch>>,
}

#[derive(Debug)]
struct Batch {
    /// The open transaction, if any.
    tx: Option<Transaction<'static, Sqlite>>,
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

impl Default for Writers {
    fn default() -> Self {
        Writers {
            batch: Arc::new(Mutex::new(Batch {
                tx: None,
                ops: 0,
                done: watch::channel(None).0,
            })),
        }
    }
}

impl Writers {
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

    /// The connection of the shared transaction.
    fn connection(&mut self) -> Option<&mut SqliteConnection> {
        self.guard
            .as_mut()
            .and_then(|batch| batch.tx.as_mut())
            .map(|tx| &mut **tx)
    }

    /// The shared transaction cannot be trusted any more (this writer's savepoint
    /// could not be rolled back): it is rolled back whole, and the writes it carried
    /// are told that their commit failed.
    async fn discard(mut self, cause: sqlx::Error) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let shared = guard.ops;
        guard.ops = 0;
        if let Some(tx) = guard.tx.take() {
            let _ = tx.rollback().await;
        }
        let done = std::mem::replace(&mut guard.done, watch::channel(None).0);
        done.send_replace(Some(Err(CommitFailed {
            shared,
            cause: Arc::new(cause),
        })));
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
        // than kept open with nobody to commit it. (A script's turn is never
        // stopped midway: it runs in a task of its own to the end.)
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
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
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

    /// Runs the script on `conn`: the answers of the statements that completed, and
    /// the failure that stopped the rest, if one did.
    async fn execute(&self, conn: &mut SqliteConnection) -> (Vec<Done>, Option<sqlx::Error>) {
        let mut query = sqlx::query(&self.sql);
        for arg in &self.args {
            query = match arg {
                Arg::Text(s) => query.bind(s.as_str()),
                Arg::Int(i) => query.bind(*i),
                Arg::Null => query.bind(None::<i64>),
            };
        }
        let mut answers = Vec::with_capacity(self.statements);
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
}

/// Rolls a failed [`Script`] back to its savepoint and releases it.
async fn undo(conn: &mut SqliteConnection) -> Option<sqlx::Error> {
    conn.execute(UNDO).await.err()
}

impl Writers {
    /// Runs `script` as one operation of the shared transaction, in one call to
    /// SQLite, and hands every statement's answer (or the failure that stopped
    /// them) to `keep`, which says whether the operation stands. When it does not, or a statement failed, the script is
    /// rolled back to its savepoint and leaves no trace. An operation that stands is
    /// answered once the commit that carries it is durable; `committed` runs then,
    /// in the task, even if the caller is gone.
    ///
    /// It runs as a task of its own: a caller dropped halfway (a client that went
    /// away) cannot leave half a script in the transaction other writers share.
    /// SQLite's busy answer can come only from opening the shared transaction
    /// (its statements run holding the write lock), which retries by itself.
    pub(super) async fn run<T, K>(
        &self,
        pool: &SqlitePool,
        script: Script,
        keep: K,
        committed: impl FnOnce() + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        K: FnOnce(Result<Vec<Done>, Failed>) -> Result<T, StoreError> + Send + 'static,
    {
        let writers = Writers {
            batch: Arc::clone(&self.batch),
        };
        let pool = pool.clone();
        let work = async move {
            let mut turn = writers.turn(&pool).await?;
            let Some(conn) = turn.connection() else {
                return Err(StoreError::backend("no write transaction is open"));
            };
            let (answers, failed) = script.execute(conn).await;
            // The savepoint is the first statement: without its answer nothing ran.
            let started = !answers.is_empty();
            let kept = match failed {
                Some(error) => keep(Err(Failed {
                    statement: answers.len(),
                    error,
                })),
                None if answers.len() != script.statements => Err(StoreError::backend(format!(
                    "a script of {} statements answered {} times",
                    script.statements,
                    answers.len()
                ))),
                None => keep(Ok(answers)),
            };
            match kept {
                Ok(v) => {
                    turn.finish().await?;
                    committed();
                    Ok(v)
                }
                Err(e) => {
                    let undone = match turn.connection() {
                        Some(conn) if started => undo(conn).await,
                        _ => None,
                    };
                    match undone {
                        None => turn.abandon().await,
                        Some(cause) => turn.discard(cause).await,
                    }
                    Err(e)
                }
            }
        };
        tokio::spawn(work).await.map_err(StoreError::backend)?
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

    #[test]
    fn a_parameter_without_a_value_is_an_error() {
        let mut script = Script::new();
        assert!(script.push("SELECT ?3", &[Arg::Int(1)]).is_err());
        assert!(script.push("SELECT ?0", &[Arg::Int(1)]).is_err());
        assert!(script.push("SELECT ?", &[Arg::Int(1)]).is_err());
    }
}
