//! Group commit for this process's SQLite writers.
//!
//! SQLite lets one transaction write at a time, and with `synchronous = FULL` each
//! commit waits for the disk. Writers that queue behind one another therefore share
//! a transaction: each runs its operation in a savepoint of the open one (rolled
//! back alone if the operation fails), then queues once more; the first to get its
//! turn again commits for every operation done meanwhile, and each learns the
//! commit's outcome before it answers. One disk flush serves many writes, none is
//! acknowledged before it is durable, and a write that fails leaves no trace.

use std::sync::Arc;

use sqlx::{Connection, Sqlite, SqlitePool, Transaction};
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
        // than kept open with nobody to commit it.
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
