//! A host that reacts to provisioning as Cube Cloud does: every user an identity
//! provider creates gets a default role; a deactivation is recorded (a real host
//! would end the user's sessions there); a deletion revokes the role.
//!
//! The SCIM side writes each change and its event in one transaction
//! ([`SqlStore`]'s outbox). The host consumes the events with a cursor of its own,
//! and applies each reaction together with the event's id in one transaction of its
//! own database, so a reaction happens once even when an event is delivered again
//! after a crash; only then does it acknowledge the event. Nothing is lost between
//! the two: an event not yet acknowledged is read again on the next start.
//!
//! ```text
//! cargo run -p scimkit-sql --features store --example default_role -- [DIR]
//! ```
//!
//! It provisions users with Okta's and Entra ID's own payloads, consumes the events
//! and prints the host's roles table. Run it twice on one DIR: the second run finds
//! the first run's events acknowledged and grants nothing twice.

use std::time::Duration;

use scimkit::Registry;
use scimkit::events::{EventKind, EventLog, StoredEvent};
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit_sql::store::SqlStore;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// The host's consumer name: its cursor in the outbox.
const CONSUMER: &str = "default-role";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The host's own database: roles, deactivations, and the events already handled.
async fn host_db(path: &std::path::Path) -> Result<SqlitePool, BoxError> {
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS roles (tenant TEXT, user_id TEXT, role TEXT, \
             revoked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, user_id));
         CREATE TABLE IF NOT EXISTS deactivations (tenant TEXT, user_id TEXT, at TEXT);
         CREATE TABLE IF NOT EXISTS handled (event_id TEXT PRIMARY KEY);",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
}

/// Applies one event's reaction, once: the reaction and the event's id commit
/// together, and an id already handled is skipped.
async fn react(host: &SqlitePool, stored: &StoredEvent<String>) -> Result<(), BoxError> {
    let e = &stored.event;
    let mut tx = host.begin().await?;
    let fresh = sqlx::query("INSERT INTO handled (event_id) VALUES (?1) ON CONFLICT DO NOTHING")
        .bind(&e.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if fresh && e.resource_type == "User" {
        let (tenant, user) = (&stored.tenant, &e.resource_id);
        match &e.kind {
            EventKind::Created { .. } => {
                sqlx::query(
                    "INSERT INTO roles (tenant, user_id, role) VALUES (?1, ?2, 'viewer') \
                     ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            }
            EventKind::Deactivated => {
                // Here a real host ends the user's sessions.
                sqlx::query("INSERT INTO deactivations (tenant, user_id, at) VALUES (?1, ?2, ?3)")
                    .bind(tenant)
                    .bind(user)
                    .bind(scimkit::store::timestamp(e.time))
                    .execute(&mut *tx)
                    .await?;
            }
            EventKind::Deleted => {
                sqlx::query("UPDATE roles SET revoked = 1 WHERE tenant = ?1 AND user_id = ?2")
                    .bind(tenant)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Consumes events until none is left (a long-running host would keep waiting).
async fn consume(store: &SqlStore<String>, host: &SqlitePool) -> Result<usize, BoxError> {
    let mut waiter = store.event_waiter().await?;
    let mut handled = 0;
    loop {
        let batch = store.read_events(CONSUMER, 100).await?;
        if batch.is_empty() {
            // Nothing committed within a moment: done, for this demonstration.
            if !waiter.wait(Duration::from_millis(200)).await {
                return Ok(handled);
            }
            continue;
        }
        for stored in &batch {
            react(host, stored).await?;
            store.acknowledge_events(CONSUMER, stored.sequence).await?;
            handled += 1;
        }
    }
}

async fn call(
    service: &Service<SqlStore<String>>,
    tenant: &str,
    req: Request,
) -> Result<serde_json::Value, BoxError> {
    let resp = service.handle(&tenant.to_owned(), req).await;
    if resp.status >= 400 {
        return Err(format!("{}: {}", resp.status, String::from_utf8_lossy(&resp.body)).into());
    }
    Ok(resp.json_body().unwrap_or_default())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("scimkit-default-role"));
    std::fs::create_dir_all(&dir)?;
    let store: SqlStore<String> =
        SqlStore::connect(&dir.join("scim.db").display().to_string(), Registry::core()).await?;
    let host = host_db(&dir.join("host.db")).await?;
    let service = Service::new(store.clone(), ServiceConfig::default());

    // What identity providers do, on the first run (a second run finds Ann there
    // and provisions nothing).
    let found = call(
        &service,
        "acme",
        Request::new("GET", "/Users?filter=userName%20eq%20%22ann@example.com%22"),
    )
    .await?;
    if found["totalResults"] == 0 {
        let okta = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ann@example.com", "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"primary": true, "value": "ann@example.com", "type": "work"}], "active": true});
        let entra = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "externalId": "bob", "userName": "bob@example.com", "active": true});
        let ann = call(
            &service,
            "acme",
            Request::new("POST", "/Users").with_json(&okta),
        )
        .await?;
        let bob = call(
            &service,
            "acme",
            Request::new("POST", "/Users").with_json(&entra),
        )
        .await?;
        let (ann, bob) = (
            ann["id"].as_str().unwrap_or_default().to_owned(),
            bob["id"].as_str().unwrap_or_default().to_owned(),
        );
        // Okta deactivates Ann; Entra ID says "False" for Bob, then deletes him.
        let okta_off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": false}}]});
        let entra_off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
        let ann_path = format!("/Users/{ann}");
        let bob_path = format!("/Users/{bob}");
        call(
            &service,
            "acme",
            Request::new("PATCH", &ann_path).with_json(&okta_off),
        )
        .await?;
        call(
            &service,
            "acme",
            Request::new("PATCH", &bob_path).with_json(&entra_off),
        )
        .await?;
        call(&service, "acme", Request::new("DELETE", &bob_path)).await?;
    }

    let handled = consume(&store, &host).await?;
    println!("events handled: {handled}");
    let roles: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT tenant, user_id, role, revoked FROM roles ORDER BY rowid")
            .fetch_all(&host)
            .await?;
    for (tenant, user, role, revoked) in roles {
        let state = if revoked == 1 { "revoked" } else { "granted" };
        println!("role {tenant} {user} {role} {state}");
    }
    let deactivations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deactivations")
        .fetch_one(&host)
        .await?;
    println!("deactivations recorded: {deactivations}");
    store.close().await;
    Ok(())
}
