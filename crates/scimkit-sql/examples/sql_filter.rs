//! A host with its own tables lists users for a SCIM filter given on the command line.
//!
//! ```text
//! cargo run -p scimkit-sql --example sql_filter -- 'emails[type eq "work" and value co "@EXAMPLE.com"]'
//! cargo run -p scimkit-sql --example sql_filter -- 'title eq "cto" or active eq false' --sort-by userName --descending
//! ```
//!
//! The users live in `users` and `user_emails` (SQLite, in memory here), as they
//! would in any product that had users before it had SCIM. A [`Mapping`] says which
//! column holds which attribute; the filter becomes a `WHERE` clause with bound
//! parameters, and what the mapping cannot compare (here `title`, which has no folded
//! column, and `nickName`, which is not kept) is evaluated on the rows returned.

use rusqlite::{Connection, params_from_iter, types::Value as Sql};
use scimkit::store::Sort;
use scimkit::{Registry, SortOrder, filter::Filter, path::AttrPath};
use scimkit_sql::{Child, Column, Dialect, Mapping, Param, fold_text};
use serde_json::{Map, Value, json};

const TABLES: &str = "
CREATE TABLE users (
    id TEXT PRIMARY KEY, user_name TEXT NOT NULL, user_name_folded TEXT NOT NULL UNIQUE,
    given_name TEXT, given_name_folded TEXT, title TEXT, active INTEGER NOT NULL
);
CREATE TABLE user_emails (
    user_id TEXT NOT NULL REFERENCES users(id), position INTEGER NOT NULL,
    value TEXT NOT NULL, value_folded TEXT NOT NULL, type TEXT, type_folded TEXT, is_primary INTEGER,
    PRIMARY KEY (user_id, position)
);
CREATE INDEX user_emails_value ON user_emails (value_folded);";

/// A user of the host, with its emails (value, type, primary).
struct Seed {
    id: &'static str,
    user_name: &'static str,
    given_name: &'static str,
    title: &'static str,
    active: bool,
    emails: &'static [(&'static str, &'static str, bool)],
}

const USERS: &[Seed] = &[
    Seed {
        id: "1",
        user_name: "bjensen",
        given_name: "Barbara",
        title: "CTO",
        active: true,
        emails: &[
            ("bjensen@example.com", "work", true),
            ("babs@jensen.org", "home", false),
        ],
    },
    Seed {
        id: "2",
        user_name: "jsmith",
        given_name: "John",
        title: "Engineer",
        active: true,
        emails: &[("John.Smith@EXAMPLE.com", "work", true)],
    },
    Seed {
        id: "3",
        user_name: "Ärger",
        given_name: "Ärni",
        title: "Engineer",
        active: false,
        emails: &[("aerger@example.org", "home", true)],
    },
    Seed {
        id: "4",
        user_name: "100%_real",
        given_name: "Pat",
        title: "",
        active: true,
        emails: &[],
    },
];

fn load(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch(TABLES)?;
    for u in USERS {
        db.execute(
            "INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                u.id,
                u.user_name,
                fold_text(u.user_name),
                u.given_name,
                fold_text(u.given_name),
                u.title,
                u.active
            ],
        )?;
        for (position, (value, kind, primary)) in u.emails.iter().enumerate() {
            db.execute(
                "INSERT INTO user_emails VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    u.id,
                    position,
                    value,
                    fold_text(value),
                    kind,
                    fold_text(kind),
                    primary
                ],
            )?;
        }
    }
    Ok(())
}

/// The user the host serves for a row of `users` and its emails.
fn resource(db: &Connection, row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let id: String = row.get("id")?;
    let mut user = Map::new();
    user.insert("id".into(), json!(id));
    user.insert("userName".into(), json!(row.get::<_, String>("user_name")?));
    if let Some(given) = row.get::<_, Option<String>>("given_name")? {
        user.insert("name".into(), json!({ "givenName": given }));
    }
    if let Some(title) = row.get::<_, Option<String>>("title")? {
        user.insert("title".into(), json!(title));
    }
    user.insert("active".into(), json!(row.get::<_, bool>("active")?));
    let mut stmt = db.prepare(
        "SELECT value, type, is_primary FROM user_emails WHERE user_id = ?1 ORDER BY position",
    )?;
    let emails: Vec<Value> = stmt
        .query_map([&id], |e| {
            Ok(json!({
                "value": e.get::<_, String>(0)?,
                "type": e.get::<_, Option<String>>(1)?,
                "primary": e.get::<_, Option<bool>>(2)?,
            }))
        })?
        .collect::<Result<_, _>>()?;
    if !emails.is_empty() {
        user.insert("emails".into(), Value::Array(emails));
    }
    Ok(Value::Object(user))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let filter: Filter = args
        .next()
        .ok_or("usage: sql_filter FILTER [--sort-by ATTRIBUTE] [--descending]")?
        .parse()?;
    let mut sort = None;
    let mut order = SortOrder::Ascending;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sort-by" => {
                sort = Some(AttrPath::parse(
                    &args.next().ok_or("--sort-by needs an attribute")?,
                )?)
            }
            "--descending" => order = SortOrder::Descending,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let registry = Registry::core();
    let users = registry.resource_type("User").ok_or("no User type")?;
    // Declared once, checked against the schema once.
    let mapping = Mapping::builder(&users, "users", "id")
        .column(
            "userName",
            Column::new("user_name").folded("user_name_folded"),
        )
        .column(
            "name.givenName",
            Column::new("given_name").folded("given_name_folded"),
        )
        .column("title", "title")
        .column("active", "active")
        .child(
            "emails",
            Child::new("user_emails", "user_id")
                .order("position")
                .column("value", Column::new("value").folded("value_folded"))
                .column("type", Column::new("type").folded("type_folded"))
                .column("primary", "is_primary"),
        )
        .build()?;

    let db = Connection::open_in_memory()?;
    load(&db)?;

    // A filter a client may send is checked against the schema first, as the
    // service does (400 invalidFilter for `password`, for instance).
    filter.check(&users)?;
    let t = mapping.translate(&filter, &users, Dialect::Sqlite)?;
    let sort = sort.map(|by| Sort { by, order });
    let order_by = sort
        .as_ref()
        .and_then(|sort| mapping.order_by(sort, &users, Dialect::Sqlite));
    let sql = format!(
        "SELECT * FROM users WHERE {} ORDER BY {}",
        t.sql,
        order_by.as_ref().map_or("users.id", |o| o.sql.as_str())
    );
    eprintln!("SQL:      {sql}");
    eprintln!("params:   {:?}", t.params);
    if let Some(residual) = &t.residual {
        eprintln!("residual: {residual} (evaluated on the rows returned)");
    }

    let params = t.params.iter().map(|p| match p {
        Param::Text(s) => Sql::Text(s.to_owned()),
        Param::Real(f) => Sql::Real(f),
        Param::Bool(b) => Sql::Integer(i64::from(b)),
        _ => Sql::Null,
    });
    let mut stmt = db.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let user = resource(&db, row)?;
        if t.residual.as_ref().is_none_or(|f| f.matches(&users, &user)) {
            found.push(user);
        }
    }
    if let (Some(sort), None) = (&sort, &order_by) {
        // The mapping cannot order by this attribute in SQL: sort in memory.
        found.sort_by(|a, b| scimkit::store::compare_for_sort(&users, sort, a, b));
    }
    for user in &found {
        println!("{user}");
    }
    eprintln!("{} of {} users", found.len(), USERS.len());
    Ok(())
}
