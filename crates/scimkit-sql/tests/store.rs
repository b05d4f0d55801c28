//! The service scenarios every store must pass (`tests/common/scenarios.rs` of the
//! workspace), run on [`SqlStore`] over SQLite (in memory and in a WAL file) and over
//! PostgreSQL (127.0.0.1:5432, in a database of the test's own, dropped afterwards;
//! skipped with a message when it is not reachable, a failure in CI).

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::scenarios::{self, clock};
use scimkit::Registry;
use scimkit::service::{Service, ServiceConfig};
use scimkit_sql::store::SqlStore;

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

/// A database (or file) of one test's own, removed when it is dropped.
enum Scratch {
    Memory,
    File(std::path::PathBuf),
    Postgres(String),
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Scratch {
    /// The URL a store connects to.
    fn url(&self) -> String {
        match self {
            Scratch::Memory => "sqlite::memory:".to_owned(),
            Scratch::File(path) => path.display().to_string(),
            Scratch::Postgres(db) => format!("postgres://postgres@127.0.0.1:5432/{db}"),
        }
    }

    fn file() -> Scratch {
        Scratch::File(std::env::temp_dir().join(format!("{}.db", unique_name("scimkit_store"))))
    }

    /// A new PostgreSQL database; `None` (after saying so) when PostgreSQL is not
    /// reachable outside CI.
    fn postgres() -> Option<Scratch> {
        // The synchronous client runs its own runtime: on a thread of its own.
        let connected =
            std::thread::spawn(|| ::postgres::Client::connect(ADMIN, ::postgres::NoTls))
                .join()
                .expect("thread");
        let mut admin = match connected {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "PostgreSQL is required in CI and is not reachable: {e}"
                );
                eprintln!("skipped: PostgreSQL is not reachable at 127.0.0.1:5432 ({e})");
                return None;
            }
        };
        let db = unique_name("scimkit_store");
        let sql = format!("CREATE DATABASE {db}");
        std::thread::spawn(move || admin.batch_execute(&sql))
            .join()
            .expect("thread")
            .expect("create database");
        Some(Scratch::Postgres(db))
    }

    async fn store(&self) -> SqlStore<String> {
        SqlStore::connect(&self.url(), Registry::core())
            .await
            .expect("store")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::Memory => {}
            Scratch::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Scratch::Postgres(db) => {
                let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                // The synchronous client runs its own runtime: on a thread of its own.
                let _ = std::thread::spawn(move || {
                    if let Ok(mut admin) = ::postgres::Client::connect(ADMIN, ::postgres::NoTls) {
                        let _ = admin.batch_execute(&sql);
                    }
                })
                .join();
            }
        }
    }
}

fn service(store: SqlStore<String>) -> Service<SqlStore<String>> {
    let base = url::Url::parse("https://example.com/scim/v2").expect("url");
    Service::new(store, ServiceConfig::with_base_url(base)).with_clock(clock())
}

/// One scenario on each database: `$name` on SQLite in memory, in a file, and on
/// PostgreSQL.
macro_rules! on_every_database {
    ($($name:ident),* $(,)?) => {
        mod sqlite_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let scratch = Scratch::Memory;
                    let store = scratch.store().await;
                    scenarios::$name(service(store.clone())).await;
                    store.close().await;
                }
            )*
        }
        mod sqlite_file {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let scratch = Scratch::file();
                    let store = scratch.store().await;
                    scenarios::$name(service(store.clone())).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(scratch) = Scratch::postgres() else { return };
                    let store = scratch.store().await;
                    scenarios::$name(service(store.clone())).await;
                    store.close().await;
                }
            )*
        }
    };
}

on_every_database!(
    okta_provisioning_lifecycle,
    entra_provisioning_lifecycle,
    deleting_a_user_removes_it_from_groups,
    every_fixture_query_is_understood,
    paging_is_stable_and_counted,
    projection_honours_returned,
    etags_and_conditional_requests,
    put_rules,
    uniqueness_is_case_insensitive_and_per_tenant,
    discovery_is_truthful,
    error_paths_are_scim_errors,
    media_types_and_trailing_slashes,
    projection_of_extension_attributes,
);

/// 16 clients adding 100 members each to one group: 1,600 members, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_member_adds_on_sqlite_file() {
    let scratch = Scratch::file();
    scenarios::concurrent_member_adds(scratch.store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_member_adds_on_postgres() {
    let Some(scratch) = Scratch::postgres() else {
        return;
    };
    scenarios::concurrent_member_adds(scratch.store().await).await;
}
