//! A host's own tables for the differential tests: `users` with a column per
//! attribute (folded columns beside most case-insensitive ones, none beside `title`
//! and `name.familyName`, whose comparisons are left to the residual), and
//! `user_emails`, one row per email. Users are written into the rows and built back
//! from them as a host would, so the evaluator sees exactly what SQL sees.

use chrono::{DateTime, FixedOffset};
use scimkit::Registry;
use scimkit_sql::{Child, Column, Mapping, fold_text, instant_text};
use serde_json::{Map, Value, json};

pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The mapping of the tables below.
pub fn mapping() -> Mapping {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    Mapping::builder(&users, "users", "id")
        .column(
            "userName",
            Column::new("user_name").folded("user_name_folded"),
        )
        .column(
            "displayName",
            Column::new("display_name").folded("display_name_folded"),
        )
        .column("title", "title")
        .column("externalId", "external_id")
        .column("active", "active")
        .column(
            "name.givenName",
            Column::new("given_name").folded("given_name_folded"),
        )
        .column("name.familyName", "family_name")
        .column("meta.created", "created")
        .column("meta.lastModified", "last_modified")
        .column(
            &format!("{ENTERPRISE}:employeeNumber"),
            Column::new("employee_number").folded("employee_number_folded"),
        )
        .column(
            &format!("{ENTERPRISE}:manager.value"),
            Column::new("manager_id").folded("manager_id_folded"),
        )
        .child(
            "emails",
            Child::new("user_emails", "user_id")
                .order("position")
                .column("value", Column::new("value").folded("value_folded"))
                .column("type", Column::new("type").folded("type_folded"))
                .column("primary", "is_primary"),
        )
        .build()
        .expect("the mapping fits the schema")
}

/// The tables, in SQLite (`external_id` collates NOCASE, which the translation
/// must override for a case-exact attribute) or PostgreSQL.
pub fn tables(postgres: bool) -> String {
    let (boolean, time, nocase) = if postgres {
        ("boolean", "timestamptz", "")
    } else {
        ("INTEGER", "TEXT", " COLLATE NOCASE")
    };
    format!(
        "CREATE TABLE users (n integer PRIMARY KEY, id text NOT NULL, \
         user_name text, user_name_folded text, display_name text, display_name_folded text, \
         title text, external_id text{nocase}, active {boolean}, \
         given_name text, given_name_folded text, family_name text, \
         created {time}, last_modified {time}, \
         employee_number text, employee_number_folded text, manager_id text, manager_id_folded text); \
         CREATE TABLE user_emails (user_id text NOT NULL, position integer NOT NULL, \
         value text, value_folded text, type text, type_folded text, is_primary {boolean});"
    )
}

/// One email row.
#[derive(Debug, Clone)]
pub struct EmailRow {
    pub value: Option<String>,
    pub kind: Option<String>,
    pub primary: Option<bool>,
}

/// One user's row, and its emails.
#[derive(Debug, Clone, Default)]
pub struct UserRow {
    pub id: String,
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    pub title: Option<String>,
    pub external_id: Option<String>,
    pub active: Option<bool>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub created: Option<DateTime<FixedOffset>>,
    pub last_modified: Option<DateTime<FixedOffset>>,
    pub employee_number: Option<String>,
    pub manager_id: Option<String>,
    pub emails: Vec<EmailRow>,
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

fn time(v: Option<&Value>) -> Option<DateTime<FixedOffset>> {
    v.and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
}

impl UserRow {
    /// What a host's tables keep of `user` (values of another type are dropped).
    pub fn of(user: &Value) -> UserRow {
        let ext = user.get(ENTERPRISE);
        UserRow {
            id: String::new(),
            user_name: text(user.get("userName")),
            display_name: text(user.get("displayName")),
            title: text(user.get("title")),
            external_id: text(user.get("externalId")),
            active: user.get("active").and_then(Value::as_bool),
            given_name: text(user.pointer("/name/givenName")),
            family_name: text(user.pointer("/name/familyName")),
            created: time(user.pointer("/meta/created")),
            last_modified: time(user.pointer("/meta/lastModified")),
            employee_number: text(ext.and_then(|e| e.get("employeeNumber"))),
            manager_id: text(ext.and_then(|e| e.pointer("/manager/value"))),
            emails: user
                .get("emails")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_object)
                        .map(|e| EmailRow {
                            value: text(e.get("value")),
                            kind: text(e.get("type")),
                            primary: e.get("primary").and_then(Value::as_bool),
                        })
                        // A host keeps no row for a value with nothing in it.
                        .filter(|e| e.value.is_some() || e.kind.is_some() || e.primary.is_some())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The user a host builds from the rows: `NULL` is absent, and a complex value
    /// exists when one of its columns is not `NULL`.
    pub fn resource(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::from(self.id.clone()));
        let put = |m: &mut Map<String, Value>, k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put(&mut m, "userName", self.user_name.clone().map(Value::from));
        put(
            &mut m,
            "displayName",
            self.display_name.clone().map(Value::from),
        );
        put(&mut m, "title", self.title.clone().map(Value::from));
        put(
            &mut m,
            "externalId",
            self.external_id.clone().map(Value::from),
        );
        put(&mut m, "active", self.active.map(Value::from));
        let mut name = Map::new();
        put(
            &mut name,
            "givenName",
            self.given_name.clone().map(Value::from),
        );
        put(
            &mut name,
            "familyName",
            self.family_name.clone().map(Value::from),
        );
        if !name.is_empty() {
            m.insert("name".into(), Value::Object(name));
        }
        let mut meta = Map::new();
        put(
            &mut meta,
            "created",
            self.created.map(|t| t.to_rfc3339().into()),
        );
        put(
            &mut meta,
            "lastModified",
            self.last_modified.map(|t| t.to_rfc3339().into()),
        );
        if !meta.is_empty() {
            m.insert("meta".into(), Value::Object(meta));
        }
        let mut ext = Map::new();
        put(
            &mut ext,
            "employeeNumber",
            self.employee_number.clone().map(Value::from),
        );
        if let Some(manager) = &self.manager_id {
            ext.insert("manager".into(), json!({ "value": manager }));
        }
        if !ext.is_empty() {
            m.insert(ENTERPRISE.into(), Value::Object(ext));
        }
        let emails: Vec<Value> = self
            .emails
            .iter()
            .map(|e| {
                let mut o = Map::new();
                put(&mut o, "value", e.value.clone().map(Value::from));
                put(&mut o, "type", e.kind.clone().map(Value::from));
                put(&mut o, "primary", e.primary.map(Value::from));
                Value::Object(o)
            })
            .collect();
        if !emails.is_empty() {
            m.insert("emails".into(), Value::Array(emails));
        }
        Value::Object(m)
    }

    /// The `users` columns after `n` and `id`, as text (booleans as `true`/`false`,
    /// instants by [`instant_text`]), in the order of [`tables`].
    pub fn columns(&self) -> Vec<Option<String>> {
        let folded = |s: &Option<String>| s.as_deref().map(fold_text);
        vec![
            self.user_name.clone(),
            folded(&self.user_name),
            self.display_name.clone(),
            folded(&self.display_name),
            self.title.clone(),
            self.external_id.clone(),
            self.active.map(|b| b.to_string()),
            self.given_name.clone(),
            folded(&self.given_name),
            self.family_name.clone(),
            self.created.as_ref().map(instant_text),
            self.last_modified.as_ref().map(instant_text),
            self.employee_number.clone(),
            folded(&self.employee_number),
            self.manager_id.clone(),
            folded(&self.manager_id),
        ]
    }
}

/// The `INSERT` of a user's row: `n` (integer), `id`, then [`UserRow::columns`] as
/// text, cast where the column is not text.
pub fn insert_user(postgres: bool) -> String {
    let cast = |n: usize, ty: &str| {
        if postgres {
            format!("${n}::text::{ty}")
        } else if ty == "boolean" {
            format!("(CASE ?{n} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)")
        } else {
            format!("?{n}")
        }
    };
    let values: Vec<String> = (1..=18)
        .map(|n| match n {
            9 => cast(n, "boolean"),
            13 | 14 => cast(n, "timestamptz"),
            n => cast(n, "text"),
        })
        .collect();
    let n = if postgres { "$1::integer" } else { "?1" };
    format!("INSERT INTO users VALUES ({n}, {})", values[1..].join(", "))
}

/// The `INSERT` of an email row: user id, position (integer), value, folded value,
/// type, folded type, primary (`true`/`false` text).
pub fn insert_email(postgres: bool) -> &'static str {
    if postgres {
        "INSERT INTO user_emails VALUES ($1, $2::integer, $3, $4, $5, $6, $7::text::boolean)"
    } else {
        "INSERT INTO user_emails VALUES (?1, ?2, ?3, ?4, ?5, ?6, (CASE ?7 WHEN 'true' THEN 1 WHEN 'false' THEN 0 END))"
    }
}

impl EmailRow {
    /// The email row's text columns after user id and position.
    pub fn columns(&self) -> Vec<Option<String>> {
        vec![
            self.value.clone(),
            self.value.as_deref().map(fold_text),
            self.kind.clone(),
            self.kind.as_deref().map(fold_text),
            self.primary.map(|b| b.to_string()),
        ]
    }
}

/// Rows for `users`, and the users built back from them.
pub fn rows(users: &[Value]) -> (Vec<UserRow>, Vec<Value>) {
    let rows: Vec<UserRow> = users
        .iter()
        .enumerate()
        .map(|(n, u)| UserRow {
            id: super::id(n),
            ..UserRow::of(u)
        })
        .collect();
    let rebuilt = rows.iter().map(UserRow::resource).collect();
    (rows, rebuilt)
}
