//! Runs `EXPLAIN ANALYZE` on the SQL `translate` writes for the look-ups identity
//! providers make, against the 1,000,000 users `scripts/seed-million.sql` loads into
//! the schema `scimkit_scale`, and prints each plan's key lines and the execution time.
//!
//! `bash crates/scimkit-sql/scripts/scale-postgres.sh` seeds and runs it (PostgreSQL on
//! 127.0.0.1:5432, user `postgres`, database `test`).

use postgres::types::ToSql;
use postgres::{Client, NoTls};
use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit_sql::{Dialect, Param, translate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut db = Client::connect("host=127.0.0.1 user=postgres dbname=test", NoTls)?;
    db.batch_execute("SET search_path TO scimkit_scale")?;
    let registry = Registry::core();
    let users = registry.resource_type("User").ok_or("no User type")?;
    for text in [
        r#"userName eq "USER424242@example.com""#,
        r#"externalId eq "ext-424242""#,
        r#"id eq "2819c223-7f76-453a-919d-000000424242""#,
        r#"emails[value eq "user424242@example.org"]"#,
        r#"userName sw "user42424""#,
    ] {
        let filter: Filter = text.parse()?;
        let t = translate(&filter, &users, "cmp", Dialect::Postgres);
        let params: Vec<Box<dyn ToSql + Sync + '_>> = t
            .params
            .iter()
            .map(|p| -> Box<dyn ToSql + Sync + '_> {
                match p {
                    Param::Text(s) => Box::new(s),
                    Param::Real(f) => Box::new(f),
                    _ => Box::new(Option::<String>::None),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
        let found = db
            .query(&format!("SELECT n FROM users WHERE {}", t.sql), &refs)?
            .len();
        let plan = db.query(
            &format!("EXPLAIN ANALYZE SELECT n FROM users WHERE {}", t.sql),
            &refs,
        )?;
        println!("{text}  ({found} found)");
        for row in plan {
            let line: String = row.get(0);
            if line.contains("Scan")
                || line.contains("Execution Time")
                || line.contains("Index Cond")
            {
                println!("    {}", line.trim());
            }
        }
    }
    Ok(())
}
