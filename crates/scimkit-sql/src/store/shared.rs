//! PostgreSQL: the whole-resource writes (PUT, PATCH) a process has in flight at the
//! same time share statements, and so commits.
//!
//! Each write stays a write of its own: its row is updated only at the version it
//! read, its unique values are claimed through the unique index and its events are
//! recorded, each in the statement that writes its row. What the writes share is
//! the statement, its transaction and the commit's disk flush: a write costs what
//! PostgreSQL spends on its rows, not a commit (and the wait for the disk, and
//! the set-up of a many-part statement) of its own. One task of the process, the
//! runner, sends the statements, one at a time: writes queue while a statement is
//! on its way, and the next takes what queued meanwhile (so statements grow with
//! the load, and a commit that takes longer serves more writes); a write that
//! finds no statement on its way runs at once, alone, in the statement it has
//! always had. Each instance has its own runner. A statement that stalls (its
//! pages read from disk, a row another transaction holds) does not hold up the
//! rest: after 10 ms another runner sends the writes queued behind it, and so on,
//! up to four statements at once; a runner that ends a statement while another
//! that does not stall runs stops, so that statements grow again once none
//! stalls. A later write of a row waits for the statement after the one that
//! carries the row's earlier write.
//!
//! A shared statement the database refuses was rolled back whole (one statement,
//! its own transaction): each of its writes then runs alone, in a task of its own,
//! so that a conflict, a deadlock with another instance or any other failure is
//! answered to the write it belongs to, exactly as without sharing. A statement
//! whose connection failed may or may not have committed: each of its writes
//! reports the failure, as it would alone. Every guarantee is the database's, as
//! before: instances share nothing but the database, and the queue only decides
//! which writes travel together. Each statement takes its rows in one order
//! (tenant, type, id), so that two instances' statements lock shared rows in the
//! same order rather than deadlock. The runner announces the events of the writes
//! that stood once they are committed, even when their callers went away.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use scimkit::store::{StoreError, UniqueValue};
use sqlx::PgPool;
use tokio::sync::{oneshot, watch};

use super::{EventRow, pg_claims_and_events, pg_write};

/// Writes in one statement at most.
const SHARED_AT_MOST: usize = 64;

/// A statement on its way for longer than this (waiting for pages the database
/// reads from disk or writes out to make room, or for a row another transaction
/// holds) lets another runner send the writes queued behind it.
const STALLED: Duration = Duration::from_millis(10);

/// Statements of one process on their way at once, at most.
const RUNNERS: usize = 4;

/// The statement of several writes, each an element of its arrays: `$1`–`$7` the
/// rows (tenant, resource type, id, expected version, new version, document,
/// comparison document), `$8`–`$10` the unique values (the write's position from
/// 1, attribute, value), `$11`–`$14` the events (the write's position, id, time in
/// milliseconds, JSON) in the order they are recorded. It returns the positions of
/// the writes whose row was at the expected version, and only these claim and
/// record.
const SHARED_SQL: &str = "WITH input AS (\
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
    $6::text[], $7::text[]) WITH ORDINALITY \
    AS i (tenant, resource_type, id, expected, version, resource, cmp, w)), \
written AS (UPDATE scim_resources AS r \
    SET version = i.version, resource = i.resource::jsonb, cmp = i.cmp::jsonb \
    FROM input AS i \
    WHERE r.tenant = i.tenant AND r.resource_type = i.resource_type \
    AND r.id = i.id COLLATE \"C\" AND r.version = i.expected \
    RETURNING i.w, i.tenant, i.resource_type, i.id), \
wanted AS (SELECT w.tenant, w.resource_type, w.id, c.attribute, c.value \
    FROM unnest($8::int8[], $9::text[], $10::text[]) AS c (w, attribute, value) \
    JOIN written AS w ON w.w = c.w), \
released AS (DELETE FROM scim_unique AS u USING written AS w \
    WHERE u.tenant = w.tenant AND u.resource_type = w.resource_type AND u.id = w.id \
    AND NOT EXISTS (SELECT 1 FROM wanted AS c WHERE c.tenant = w.tenant \
    AND c.resource_type = w.resource_type AND c.id = w.id \
    AND c.attribute = u.attribute AND c.value = u.value)), \
claimed AS (INSERT INTO scim_unique (tenant, resource_type, attribute, value, id) \
    SELECT c.tenant, c.resource_type, c.attribute, c.value, c.id FROM wanted AS c \
    WHERE NOT EXISTS (SELECT 1 FROM scim_unique AS u WHERE u.tenant = c.tenant \
    AND u.resource_type = c.resource_type AND u.attribute = c.attribute \
    AND u.value = c.value AND u.id = c.id)), \
recorded AS (INSERT INTO scim_events (sequence, tenant, event_id, time_ms, event) \
    SELECT -nextval('scim_event_pending'), w.tenant, e.id, e.ms, e.ev::jsonb \
    FROM unnest($11::int8[], $12::text[], $13::int8[], $14::text[]) WITH ORDINALITY \
    AS e (w, id, ms, ev, ord) JOIN written AS w ON w.w = e.w ORDER BY e.ord) \
SELECT w FROM written";

/// One write of a whole resource: the row `id` of `tenant` and `resource_type`
/// becomes `resource` (with its comparison document `cmp`) at `version` if it is at
/// `expected`; then it holds `unique` (distinct values) and records `events`.
pub(super) struct Replace {
    pub tenant: String,
    pub resource_type: String,
    pub id: String,
    pub expected: i64,
    pub version: i64,
    pub resource: String,
    pub cmp: String,
    pub unique: Vec<UniqueValue>,
    pub events: Vec<EventRow>,
}

impl Replace {
    fn row(&self) -> Row {
        (
            self.tenant.clone(),
            self.resource_type.clone(),
            self.id.clone(),
        )
    }
}

/// What a write learns: whether its row was at the expected version (and so
/// written), or why it failed.
type Answer = Result<bool, StoreError>;

/// A write waiting for a statement.
struct Job {
    write: Replace,
    answer: oneshot::Sender<Answer>,
}

/// A resource's row: tenant, type and id.
type Row = (String, String, String);

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The runners running: one while statements take their usual time, and one
    /// more for each that stalls (see [`STALLED`]), at most [`RUNNERS`].
    runners: usize,
    /// Those of them whose statement stalls.
    stalled: usize,
    /// The rows of the statements on their way: a later write of one of them
    /// waits for the next statement, which reads what the earlier one wrote.
    in_flight: HashSet<Row>,
}

impl Queue {
    /// Whether writes wait and no runner is free to take them: none runs, or
    /// each that runs stalls (and fewer than [`RUNNERS`] do).
    fn wants_runner(&self) -> bool {
        !self.jobs.is_empty() && self.runners == self.stalled && self.runners < RUNNERS
    }
}

/// The whole-resource writes of this process that wait for a statement (see the
/// [module documentation](self)).
pub(super) struct SharedWrites {
    queue: Mutex<Queue>,
    /// The store's count of commits of events (see `SqlStore::announce`).
    new_events: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for SharedWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWrites").finish_non_exhaustive()
    }
}

impl SharedWrites {
    /// The queue of a store whose commits of events `new_events` counts.
    pub(super) fn new(new_events: Arc<watch::Sender<u64>>) -> Self {
        SharedWrites {
            queue: Mutex::default(),
            new_events,
        }
    }

    /// Counts a commit of events, waking the consumers that wait for them.
    fn announce(&self) {
        self.new_events.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `write`, alone or with others: `Ok(false)` when its row is not at the
    /// expected version (or is gone). The statement runs in a task of its own, so
    /// a caller that goes away does not stop the others' writes, and the runner
    /// announces the write's events once committed.
    pub(super) async fn replace(self: &Arc<Self>, pool: &PgPool, write: Replace) -> Answer {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.queue();
            queue.jobs.push_back(Job { write, answer });
            queue.wants_runner() && {
                queue.runners += 1;
                true
            }
        };
        if start {
            // Made before the task: dropped unpolled, it still frees the queue.
            tokio::spawn(drain(Runner::new(self), pool.clone()));
        }
        answered.await.unwrap_or_else(|_| {
            Err(StoreError::backend(
                "the task running this write stopped (the runtime is shutting down): \
                 whether it was written is not known",
            ))
        })
    }
}

/// A runner's hold on its queue: a runner whose task is dropped (by a runtime
/// shutting down) frees its rows and, if it was the last, tells the writes still
/// queued, and lets the next write start another.
struct Runner {
    writes: Arc<SharedWrites>,
    /// The rows of its statement on its way.
    rows: Vec<Row>,
    /// Whether that statement stalls.
    stalled: bool,
    stopped: bool,
}

impl Runner {
    fn new(writes: &Arc<SharedWrites>) -> Self {
        Runner {
            writes: Arc::clone(writes),
            rows: Vec::new(),
            stalled: false,
            stopped: false,
        }
    }

    /// Its statement ended: its rows are free, and it stalls no more.
    fn ended(&mut self, queue: &mut Queue) {
        for row in self.rows.drain(..) {
            queue.in_flight.remove(&row);
        }
        if std::mem::take(&mut self.stalled) {
            queue.stalled = queue.stalled.saturating_sub(1);
        }
    }

    /// Stops, counted out of the runners.
    fn stop(&mut self, queue: &mut Queue) {
        self.ended(queue);
        queue.runners = queue.runners.saturating_sub(1);
        self.stopped = true;
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if !self.stopped {
            let writes = Arc::clone(&self.writes);
            let left = {
                let mut queue = writes.queue();
                self.stop(&mut queue);
                match queue.runners {
                    0 => std::mem::take(&mut queue.jobs),
                    _ => VecDeque::new(),
                }
            };
            // Their callers get an error now, not a wait for a write to come.
            drop(left);
        }
    }
}

/// A runner: sends statements while writes queue. It stops when none does, when
/// every write queued is of a row another runner's statement carries, or when it
/// ends a statement while another runner that does not stall runs.
async fn drain(mut runner: Runner, pool: PgPool) {
    let writes = Arc::clone(&runner.writes);
    loop {
        let jobs = {
            let mut queue = writes.queue();
            let Queue {
                jobs, in_flight, ..
            } = &mut *queue;
            let taken = take(jobs, in_flight);
            if taken.is_empty() {
                runner.stop(&mut queue);
                return;
            }
            runner.rows = taken.iter().map(|j| j.write.row()).collect();
            taken
        };
        let statement = run(&writes, &pool, jobs);
        tokio::pin!(statement);
        // While it stalls, the writes queued behind it go with a helper.
        while tokio::time::timeout(STALLED, statement.as_mut())
            .await
            .is_err()
        {
            let mut queue = writes.queue();
            if !std::mem::replace(&mut runner.stalled, true) {
                queue.stalled += 1;
            }
            if queue.wants_runner() {
                queue.runners += 1;
                drop(queue);
                helper(&writes, &pool);
            }
        }
        let mut queue = writes.queue();
        runner.ended(&mut queue);
        if queue.runners.saturating_sub(queue.stalled) > 1 {
            runner.stop(&mut queue);
            return;
        }
    }
}

/// Starts a runner that the queue counts already.
fn helper(writes: &Arc<SharedWrites>, pool: &PgPool) {
    tokio::spawn(drain(Runner::new(writes), pool.clone()));
}

/// The next writes of `queued` to share a statement: up to [`SHARED_AT_MOST`] of
/// them, taken in queue order but at most one per resource, and none of a row in
/// `in_flight` (two writes of one row in one statement, or in two on their way at
/// once, would not see each other; the later one waits for the next statement),
/// sorted by tenant, type and id, the order their rows are locked in. Their rows
/// join `in_flight`.
fn take(queued: &mut VecDeque<Job>, in_flight: &mut HashSet<Row>) -> Vec<Job> {
    let mut taken = Vec::with_capacity(queued.len().min(SHARED_AT_MOST));
    let mut left = VecDeque::new();
    while let Some(job) = queued.pop_front() {
        if taken.len() == SHARED_AT_MOST {
            queued.push_front(job);
            break;
        }
        if in_flight.insert(job.write.row()) {
            taken.push(job);
        } else {
            left.push_back(job);
        }
    }
    while let Some(job) = left.pop_back() {
        queued.push_front(job);
    }
    taken.sort_by(|a, b| {
        let (a, b) = (&a.write, &b.write);
        (&a.tenant, &a.resource_type, &a.id).cmp(&(&b.tenant, &b.resource_type, &b.id))
    });
    taken
}

/// Runs `jobs` and answers each; announces the events of those that stood.
async fn run(writes: &Arc<SharedWrites>, pool: &PgPool, mut jobs: Vec<Job>) {
    if jobs.len() == 1 {
        if let Some(job) = jobs.pop() {
            run_alone(writes, pool, job).await;
        }
        return;
    }
    match together(pool, &jobs).await {
        Ok(written) => {
            let stood = |i: usize| written.contains(&(i as i64 + 1));
            let recorded = jobs
                .iter()
                .enumerate()
                .any(|(i, j)| stood(i) && !j.write.events.is_empty());
            if recorded {
                writes.announce();
            }
            for (i, job) in jobs.into_iter().enumerate() {
                let _ = job.answer.send(Ok(stood(i)));
            }
        }
        // The database refused the statement, so none of it happened: each write
        // runs alone, at once, and meets its own outcome; the runner goes on.
        Err(e) if e.as_database_error().is_some() => {
            for job in jobs {
                let (writes, pool) = (Arc::clone(writes), pool.clone());
                tokio::spawn(async move { run_alone(&writes, &pool, job).await });
            }
        }
        // Whether it committed is not known (the connection failed): each write
        // reports the failure, as it would alone.
        Err(e) => {
            let e = Arc::new(e);
            for job in jobs {
                let _ = job.answer.send(Err(StoreError::backend(Arc::clone(&e))));
            }
        }
    }
}

/// Runs `job` in a statement of its own and answers it; announces its events if
/// it stood.
async fn run_alone(writes: &SharedWrites, pool: &PgPool, job: Job) {
    let answer = alone(pool, &job.write).await;
    if matches!(answer, Ok(true)) && !job.write.events.is_empty() {
        writes.announce();
    }
    let _ = job.answer.send(answer);
}

/// Runs `jobs` in one statement ([`SHARED_SQL`]); returns the positions (from 1) of
/// the writes it wrote.
async fn together(pool: &PgPool, jobs: &[Job]) -> Result<Vec<i64>, sqlx::Error> {
    let n = jobs.len();
    let column = |f: fn(&Replace) -> &str| jobs.iter().map(|j| f(&j.write)).collect::<Vec<_>>();
    let (mut claim_at, mut attributes, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let (mut event_at, mut ids, mut times, mut texts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, job) in jobs.iter().enumerate() {
        let at = i as i64 + 1;
        for u in &job.write.unique {
            claim_at.push(at);
            attributes.push(u.attribute.as_str());
            values.push(u.value.as_str());
        }
        for e in &job.write.events {
            event_at.push(at);
            ids.push(e.id.as_str());
            times.push(e.ms);
            texts.push(e.json.as_str());
        }
    }
    let mut expected = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    for job in jobs {
        expected.push(job.write.expected);
        versions.push(job.write.version);
    }
    sqlx::query_scalar::<_, i64>(SHARED_SQL)
        .bind(column(|w| &w.tenant))
        .bind(column(|w| &w.resource_type))
        .bind(column(|w| &w.id))
        .bind(expected)
        .bind(versions)
        .bind(column(|w| &w.resource))
        .bind(column(|w| &w.cmp))
        .bind(claim_at)
        .bind(attributes)
        .bind(values)
        .bind(event_at)
        .bind(ids)
        .bind(times)
        .bind(texts)
        .fetch_all(pool)
        .await
}

/// Runs `write` in a statement of its own.
async fn alone(pool: &PgPool, write: &Replace) -> Answer {
    let update = "UPDATE scim_resources SET version = $5, resource = $6::jsonb, cmp = $7::jsonb \
                  WHERE tenant = $1 AND resource_type = $2 AND id = $3 AND version = $4";
    let sql = format!(
        "WITH written AS ({update} RETURNING 1){} SELECT count(*) FROM written",
        pg_claims_and_events(write.unique.len(), write.events.len(), 8, true)
    );
    let head = [
        write.tenant.as_str().into(),
        write.resource_type.as_str().into(),
        write.id.as_str().into(),
        write.expected.into(),
        write.version.into(),
        write.resource.as_str().into(),
        write.cmp.as_str().into(),
    ];
    let distinct: Vec<&UniqueValue> = write.unique.iter().collect();
    pg_write(pool, &sql, &head, &distinct, &write.events)
        .await
        .map(|written| written > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        let (answer, _) = oneshot::channel();
        Job {
            write: Replace {
                tenant: "t".into(),
                resource_type: "User".into(),
                id: id.into(),
                expected: 1,
                version: 2,
                resource: "{}".into(),
                cmp: "{}".into(),
                unique: Vec::new(),
                events: Vec::new(),
            },
            answer,
        }
    }

    fn ids(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.write.id.as_str()).collect()
    }

    #[test]
    fn a_statement_takes_one_write_per_resource_and_leaves_the_rest_in_order() {
        let mut queued: VecDeque<Job> = ["a", "b", "a", "c", "b", "a"].map(job).into();
        let first = take(&mut queued, &mut HashSet::new());
        assert_eq!(ids(&first), ["a", "b", "c"]);
        let left: Vec<Job> = queued.drain(..).collect();
        assert_eq!(ids(&left), ["a", "b", "a"]);
    }

    #[test]
    fn a_statement_leaves_the_rows_of_those_on_their_way() {
        let mut queued: VecDeque<Job> = ["a", "b", "c", "a"].map(job).into();
        let mut in_flight = HashSet::new();
        in_flight.insert(job("b").write.row());
        let first = take(&mut queued, &mut in_flight);
        assert_eq!(ids(&first), ["a", "c"]);
        let left: Vec<&str> = queued.iter().map(|j| j.write.id.as_str()).collect();
        assert_eq!(left, ["b", "a"]);
        assert_eq!(in_flight.len(), 3);
        // Nothing else can go until those rows are free.
        assert!(take(&mut queued, &mut in_flight).is_empty());
        assert_eq!(queued.len(), 2);
    }

    #[test]
    fn a_statement_takes_at_most_its_share() {
        let mut queued: VecDeque<Job> = (0..SHARED_AT_MOST + 3)
            .map(|i| job(&i.to_string()))
            .collect();
        assert_eq!(take(&mut queued, &mut HashSet::new()).len(), SHARED_AT_MOST);
        assert_eq!(queued.len(), 3);
        let next = SHARED_AT_MOST.to_string();
        assert_eq!(
            queued.front().map(|j| j.write.id.as_str()),
            Some(next.as_str())
        );
    }
}
