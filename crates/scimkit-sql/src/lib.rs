//! # scimkit-sql
//!
//! SCIM filters (RFC 7644 §3.4.2.2) as SQL that selects exactly the resources
//! scimkit's own evaluator, [`Filter::matches`](scimkit::filter::Filter::matches),
//! selects. This part depends on no database driver: it writes SQL text with bound
//! parameters, and any client (rusqlite, sqlx, tokio-postgres, diesel) runs it.
//!
//! Two pieces:
//! - [`comparison_document`]: what SQL compares, computed in Rust next to each
//!   resource (strings folded by Rust's rule, dateTimes as instants, numbers as the
//!   evaluator reads them), so no comparison depends on the database's collation,
//!   `lower()` or date functions;
//! - [`translate`]: a filter as a two-valued SQL condition on that document, with
//!   every value bound, and a residual filter for what it cannot express;
//!   [`Translator`] gives the same for one resource type, keeping the SQL of each
//!   shape of filter it has translated.
//!
//! ```
//! use rusqlite::{Connection, params_from_iter};
//! use scimkit::{Registry, filter::Filter};
//! use scimkit_sql::{Dialect, Param, comparison_document, translate};
//! use serde_json::json;
//!
//! let registry = Registry::core();
//! let users = registry.resource_type("User").ok_or("no User type")?;
//! let db = Connection::open_in_memory()?;
//! db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, cmp TEXT NOT NULL)", [])?;
//! for (id, user) in [
//!     ("1", json!({"userName": "bjensen", "externalId": "x1"})),
//!     ("2", json!({"userName": "JSmith"})),
//! ] {
//!     let cmp = comparison_document(&users, &user).to_string();
//!     db.execute("INSERT INTO users VALUES (?1, ?2)", [id, cmp.as_str()])?;
//! }
//! // SQL's NULL logic would drop user 2, who has no externalId; SCIM's does not.
//! let filter: Filter = r#"externalId ne "x1" or userName eq "BJENSEN""#.parse()?;
//! let t = translate(&filter, &users, "cmp", Dialect::Sqlite);
//! let params = t.params.iter().map(|p| match p {
//!     Param::Text(s) => rusqlite::types::Value::Text(s.to_owned()),
//!     Param::Real(f) => rusqlite::types::Value::Real(f),
//!     _ => rusqlite::types::Value::Null,
//! });
//! let sql = format!("SELECT id FROM users WHERE {} ORDER BY id", t.sql);
//! let mut stmt = db.prepare(&sql)?;
//! let ids: Vec<String> = stmt
//!     .query_map(params_from_iter(params), |r| r.get(0))?
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(ids, ["1", "2"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[macro_use]
mod text;

pub mod document;
pub mod params;
pub mod relational;
#[cfg(feature = "store")]
pub mod store;
mod template;
mod translate;

pub use document::{comparison_document, fold_text, instant_text};
pub use params::{Param, Params};
pub use relational::{Child, Column, Mapping, MappingBuilder, MappingError, Unmapped};
pub use translate::{Dialect, OrderBy, Translation, Translator, order_by, translate};
