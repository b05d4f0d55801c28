//! A store over a host's own data: the host keeps employees in its own typed table
//! (here a map; in practice its database), and SCIM Users are a view of them. The
//! store maps each SCIM User to an `Employee` and back; what the table has no
//! column for is refused with a clear 400, so nothing an identity provider sends is
//! silently dropped. Groups, which the host does not model, go to a `MemoryStore`.
//!
//! ```text
//! cargo run --example custom_store
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use scimkit::events::Event;
use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::{
    ListQuery, MemoryStore, Page, Projection, Record, Store, StoreError, UniqueValue, apply_query,
};
use serde_json::{Value, json};

/// A row of the host's own table.
#[derive(Debug, Clone)]
struct Employee {
    id: String,
    email: String,
    given_name: Option<String>,
    family_name: Option<String>,
    active: bool,
    version: u64,
    created: String,
    modified: String,
}

impl Employee {
    /// The SCIM User this employee is.
    fn to_scim(&self) -> Record {
        let mut user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": self.id,
            "userName": self.email,
            "active": self.active,
            "emails": [{"value": self.email, "primary": true}],
            "meta": {"resourceType": "User", "created": self.created, "lastModified": self.modified},
        });
        if self.given_name.is_some() || self.family_name.is_some() {
            user["name"] = json!({"givenName": self.given_name, "familyName": self.family_name});
        }
        Record {
            id: self.id.clone(),
            version: self.version,
            resource: user,
        }
    }

    /// The employee a SCIM User describes (the service has already validated and
    /// normalised it against the User schema).
    fn from_scim(record: &Record) -> Result<Employee, StoreError> {
        let user = &record.resource;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let supported = [
            "schemas",
            "id",
            "userName",
            "active",
            "emails",
            "name",
            "meta",
            "externalId",
        ];
        if let Some(other) = user
            .as_object()
            .and_then(|o| o.keys().find(|k| !supported.contains(&k.as_str())))
        {
            return Err(StoreError::Invalid(format!(
                "this service keeps userName, name, emails and active; it has nowhere to keep {other}"
            )));
        }
        let meta = &user["meta"];
        Ok(Employee {
            id: record.id.clone(),
            email: text(&user["userName"])
                .ok_or_else(|| StoreError::Invalid("userName is required".into()))?,
            given_name: text(&user["name"]["givenName"]),
            family_name: text(&user["name"]["familyName"]),
            active: user["active"].as_bool().unwrap_or(true),
            version: record.version,
            created: text(&meta["created"]).unwrap_or_default(),
            modified: text(&meta["lastModified"]).unwrap_or_default(),
        })
    }
}

/// The host's store: employees in its own table, anything else in memory.
#[derive(Default)]
struct HrStore {
    employees: Mutex<BTreeMap<String, Employee>>,
    others: MemoryStore<()>,
}

impl HrStore {
    fn table(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Employee>>, StoreError> {
        self.employees
            .lock()
            .map_err(|_| StoreError::backend("the employee table lock is poisoned"))
    }

    /// Whether `email` belongs to an employee other than `except` (userName is unique,
    /// case-insensitively: the service passes it folded in `unique`).
    fn taken(table: &BTreeMap<String, Employee>, unique: &[UniqueValue], except: &str) -> bool {
        unique.iter().any(|u| {
            table
                .values()
                .any(|e| e.id != except && e.email.to_lowercase() == u.value)
        })
    }
}

impl Store for HrStore {
    type Context = ();

    async fn create(
        &self,
        ctx: &(),
        resource_type: &str,
        record: Record,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> Result<Record, StoreError> {
        if resource_type != "User" {
            return self
                .others
                .create(ctx, resource_type, record, unique, events)
                .await;
        }
        // This host keeps no event log for its own table; one that reacts to
        // provisioning would insert `events` in the same transaction as the row.
        let employee = Employee::from_scim(&record)?;
        let mut table = self.table()?;
        if HrStore::taken(&table, unique, &employee.id) {
            return Err(StoreError::Conflict(format!(
                "userName {} is taken",
                employee.email
            )));
        }
        table.insert(employee.id.clone(), employee.clone());
        Ok(employee.to_scim())
    }

    async fn get(
        &self,
        ctx: &(),
        resource_type: &str,
        id: &str,
        projection: &Projection,
    ) -> Result<Record, StoreError> {
        if resource_type != "User" {
            return self.others.get(ctx, resource_type, id, projection).await;
        }
        let table = self.table()?;
        table
            .get(id)
            .map(Employee::to_scim)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    async fn replace(
        &self,
        ctx: &(),
        resource_type: &str,
        record: Record,
        expected_version: u64,
        unique: &[UniqueValue],
        events: &[Event],
    ) -> Result<Record, StoreError> {
        if resource_type != "User" {
            return self
                .others
                .replace(ctx, resource_type, record, expected_version, unique, events)
                .await;
        }
        let mut employee = Employee::from_scim(&record)?;
        let mut table = self.table()?;
        let Some(current) = table.get(&employee.id) else {
            return Err(StoreError::NotFound(employee.id));
        };
        if current.version != expected_version {
            return Err(StoreError::PreconditionFailed);
        }
        if HrStore::taken(&table, unique, &employee.id) {
            return Err(StoreError::Conflict(format!(
                "userName {} is taken",
                employee.email
            )));
        }
        employee.version = expected_version + 1;
        table.insert(employee.id.clone(), employee.clone());
        Ok(employee.to_scim())
    }

    async fn delete(
        &self,
        ctx: &(),
        resource_type: &str,
        id: &str,
        expected_version: Option<u64>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        if resource_type != "User" {
            return self
                .others
                .delete(ctx, resource_type, id, expected_version, events)
                .await;
        }
        let mut table = self.table()?;
        match table.get(id) {
            None => Err(StoreError::NotFound(id.to_owned())),
            Some(e) if expected_version.is_some_and(|v| v != e.version) => {
                Err(StoreError::PreconditionFailed)
            }
            Some(_) => {
                table.remove(id);
                Ok(())
            }
        }
    }

    async fn list(
        &self,
        ctx: &(),
        resource_type: &str,
        query: &ListQuery<'_>,
    ) -> Result<Page, StoreError> {
        if resource_type != "User" {
            return self.others.list(ctx, resource_type, query).await;
        }
        // Filter, sort and page in memory, exactly as the filter language says; a
        // database-backed host would translate the filter instead (see scimkit-sql).
        let records: Vec<Record> = self.table()?.values().map(Employee::to_scim).collect();
        Ok(apply_query(records.iter(), query))
    }
}

#[tokio::main]
async fn main() {
    let service = Service::new(HrStore::default(), ServiceConfig::default());
    let send = |req: Request| service.handle(&(), req);

    let created = send(Request::new("POST", "/Users").with_json(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ann@example.com",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": "ann@example.com", "primary": true}],
    })))
    .await;
    println!("POST /Users -> {}", created.status);
    let id = created
        .json_body()
        .and_then(|u| u["id"].as_str().map(str::to_owned))
        .unwrap_or_default();

    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let patched = send(Request::new("PATCH", &format!("/Users/{id}")).with_json(&deactivate)).await;
    println!("PATCH active=false -> {}", patched.status);

    let found = send(Request::new(
        "GET",
        "/Users?filter=userName%20eq%20%22ANN@example.com%22",
    ))
    .await;
    println!(
        "GET by userName -> {}: {}",
        found.status,
        String::from_utf8_lossy(&found.body)
    );

    // An attribute the host's table has no column for: a clear 400, nothing stored.
    let refused = send(Request::new("POST", "/Users").with_json(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bob@example.com", "title": "Engineer",
    })))
    .await;
    println!(
        "POST with a title -> {}: {}",
        refused.status,
        String::from_utf8_lossy(&refused.body)
    );
}
