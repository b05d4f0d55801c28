//! Differential tests on real PostgreSQL (127.0.0.1:5432, user `postgres`, database
//! `test`): random filters over hostile users, answered by PostgreSQL running the
//! translation and by `Filter::matches`, must select the same users. The test works
//! in a schema of its own, dropped afterwards. Without a reachable PostgreSQL it says
//! that it skipped, except in CI (`CI` set), where that is a failure.

#[path = "../../../tests/common/arb.rs"]
mod arb;
mod shared;

use postgres::types::ToSql;
use postgres::{Client, NoTls};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit::store::Sort;
use scimkit_sql::order_by;
use scimkit_sql::{Dialect, Param, Translation, comparison_document, translate};
use serde_json::Value;
use shared::{FIXED_FILTERS, expected, fixed_users, id, normalized, sort};

const URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

/// A schema of this test's own, dropped when the test ends.
struct Scratch {
    client: Client,
    schema: String,
}

/// The comparison-document table, with key columns that hold what the document
/// does at their attributes' paths.
const DOCUMENTS: &str = "CREATE TABLE users (n integer PRIMARY KEY, id text NOT NULL, cmp jsonb NOT NULL, \
     k_user_name text GENERATED ALWAYS AS (cmp #>> '{userName}') STORED, \
     k_external_id text GENERATED ALWAYS AS (cmp #>> '{externalId}') STORED, \
     k_display_name text GENERATED ALWAYS AS (cmp #>> '{displayName}') STORED, \
     k_id text GENERATED ALWAYS AS (cmp #>> '{id}') STORED);";

impl Scratch {
    /// A new schema holding the tables `ddl` creates; `None` (after saying so) when
    /// PostgreSQL is not reachable outside CI.
    fn open(ddl: &str) -> Option<Scratch> {
        let mut client = match Client::connect(URL, NoTls) {
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
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let schema = format!("scimkit_sql_test_{}_{nanos}", std::process::id());
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path TO {schema}; {ddl}"
            ))
            .expect("scratch schema");
        Some(Scratch { client, schema })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

fn param(p: Param<'_>) -> Box<dyn ToSql + Sync + '_> {
    match p {
        Param::Text(s) => Box::new(s),
        Param::Real(f) => Box::new(f),
        Param::Bool(b) => Box::new(b),
        other => panic!("a parameter this test cannot bind: {other:?}"),
    }
}

/// Replaces the table's rows with `users` and their comparison documents.
fn load(db: &mut Client, users: &[Value]) {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    db.batch_execute("TRUNCATE users").expect("truncate");
    for (n, user) in users.iter().enumerate() {
        let cmp = comparison_document(&schema, user).to_string();
        db.execute(
            "INSERT INTO users (n, id, cmp) VALUES ($1, $2, $3::text::jsonb)",
            &[&(n as i32), &id(n), &cmp],
        )
        .expect("insert");
    }
}

/// The users `filter` selects through PostgreSQL (residual applied in memory) and
/// through `Filter::matches`.
fn both(db: &mut Client, filter: &Filter, users: &[Value]) -> (Vec<usize>, Vec<usize>) {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    load(db, users);
    let t = translate(filter, &schema, "cmp", Dialect::Postgres);
    let found = select(db, filter, &t, users);
    // The guards on key columns select what those on the document do.
    let k = shared::keyed(Dialect::Postgres).translate(filter);
    assert_eq!(
        select(db, filter, &k, users),
        found,
        "with key columns: {filter}\n{}",
        k.sql
    );
    let expected: Vec<usize> = (0..users.len())
        .filter(|&n| filter.matches(&schema, &users[n]))
        .collect();
    (found, expected)
}

/// What the translation `t` of `filter` selects (residual applied in memory).
fn select(db: &mut Client, filter: &Filter, t: &Translation, users: &[Value]) -> Vec<usize> {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let sql = format!("SELECT n FROM users WHERE {} ORDER BY n", t.sql);
    let params: Vec<Box<dyn ToSql + Sync + '_>> = t.params.iter().map(param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
    let rows = db
        .query(&sql, &refs)
        .unwrap_or_else(|e| panic!("{filter}: {e}\n{sql}\n{:?}", t.params));
    rows.iter()
        .map(|r| r.get::<_, i32>(0) as usize)
        .filter(|&n| {
            t.residual
                .as_ref()
                .is_none_or(|f| f.matches(&schema, &users[n]))
        })
        .collect()
}

#[test]
fn postgres_selects_what_matches_selects() {
    let Some(mut scratch) = Scratch::open(DOCUMENTS) else {
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: 1_500,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (arb::filter(), proptest::collection::vec(arb::user(), 1..8));
    let client = std::cell::RefCell::new(&mut scratch.client);
    let result = runner.run(&strategy, |(filter, users)| {
        let users = normalized(users);
        let (found, expected) = both(&mut client.borrow_mut(), &filter, &users);
        prop_assert_eq!(found, expected, "{}", filter);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn postgres_fixed_vectors() {
    let Some(mut scratch) = Scratch::open(DOCUMENTS) else {
        return;
    };
    let users = fixed_users();
    for text in FIXED_FILTERS {
        let filter: Filter = text.parse().expect("parses");
        let (found, expected) = both(&mut scratch.client, &filter, &users);
        assert_eq!(found, expected, "{text}");
    }
}

/// The ids PostgreSQL selects and orders for `filter` and `sort`, residual applied.
fn ordered(db: &mut Client, filter: &Filter, users: &[Value], sort: &Sort) -> Vec<String> {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    load(db, users);
    let t = translate(filter, &schema, "cmp", Dialect::Postgres);
    let order = order_by(sort, &schema, "cmp", "id", Dialect::Postgres);
    let sql = format!(
        "SELECT id, n FROM users WHERE {} ORDER BY {}",
        t.sql, order.sql
    );
    let params: Vec<Box<dyn ToSql + Sync + '_>> = t.params.iter().map(param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
    db.query(&sql, &refs)
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1) as usize))
        .filter(|(_, n)| {
            t.residual
                .as_ref()
                .is_none_or(|f| f.matches(&schema, &users[*n]))
        })
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn postgres_orders_as_apply_query_does() {
    let Some(mut scratch) = Scratch::open(DOCUMENTS) else {
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        arb::filter(),
        proptest::collection::vec(arb::user(), 1..8),
        sort(),
    );
    let client = std::cell::RefCell::new(&mut scratch.client);
    let result = runner.run(&strategy, |(filter, users, sort)| {
        let users = normalized(users);
        let got = ordered(&mut client.borrow_mut(), &filter, &users, &sort);
        prop_assert_eq!(
            got,
            expected(&filter, &users, &sort),
            "{} sortBy {}",
            filter,
            sort.by
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The look-ups identity providers make are index scans: with a GIN index
/// (`jsonb_path_ops`) on the comparison document and a btree index on `userName`
/// (for `sw`), the plan for each uses one.
#[test]
fn postgres_plans_use_the_document_index() {
    let Some(mut scratch) = Scratch::open(DOCUMENTS) else {
        return;
    };
    let db = &mut scratch.client;
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    db.batch_execute(
        "CREATE INDEX users_cmp ON users USING gin (cmp jsonb_path_ops); \
         CREATE INDEX users_cmp_user_name ON users (((cmp #>> '{userName}')) COLLATE \"C\");",
    )
    .expect("indexes");
    for n in 0..2_000usize {
        let user = serde_json::json!({
            "id": format!("2819c223-{n:04}"),
            "userName": format!("user{n}@example.com"),
            "externalId": format!("ext-{n}"),
            "emails": [{"value": format!("user{n}@example.com"), "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": format!("{n}")}
        });
        let cmp = comparison_document(&users, &user).to_string();
        db.execute(
            "INSERT INTO users (n, id, cmp) VALUES ($1, $2, $3::text::jsonb)",
            &[&(n as i32), &id(n), &cmp],
        )
        .expect("insert");
    }
    db.batch_execute("ANALYZE users; SET enable_seqscan = off")
        .expect("analyze");
    for text in [
        r#"userName eq "USER42@example.com""#,
        r#"externalId eq "ext-42""#,
        r#"id eq "2819c223-0042""#,
        r#"emails[value eq "user42@example.com"]"#,
        r#"emails[type eq "work" and value eq "user42@example.com"]"#,
        r#"emails.value eq "user42@example.com""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "42""#,
        r#"userName sw "USER1999""#,
    ] {
        let filter: Filter = text.parse().expect("parses");
        let t = translate(&filter, &users, "cmp", Dialect::Postgres);
        let params: Vec<Box<dyn ToSql + Sync + '_>> = t.params.iter().map(param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
        let plan: Vec<String> = db
            .query(
                &format!("EXPLAIN SELECT n FROM users WHERE {}", t.sql),
                &refs,
            )
            .expect("explain")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("users_cmp"),
            "{text} does not use the index:\n{plan}"
        );
        let found = db
            .query(&format!("SELECT n FROM users WHERE {}", t.sql), &refs)
            .expect("query");
        assert_eq!(found.len(), 1, "{text}");
    }
}

mod relational {
    //! The same comparisons, sorts and pages on a host's own tables through a
    //! [`Mapping`]: `timestamptz` and `boolean` columns, folded columns, a child table.
    use super::*;
    use scimkit_sql::Mapping;
    use shared::expected_page;
    use shared::relational::{insert_email, insert_user, mapping, rows, tables};

    /// Replaces the rows with `users`'; returns the users built back from them.
    fn load(db: &mut Client, users: &[Value]) -> Vec<Value> {
        db.batch_execute("TRUNCATE users, user_emails")
            .expect("truncate");
        let (rows, rebuilt) = rows(users);
        let (user_sql, email_sql) = (insert_user(true), insert_email(true));
        for (n, row) in rows.iter().enumerate() {
            let columns = row.columns();
            let mut values: Vec<&(dyn ToSql + Sync)> = Vec::new();
            let n32 = n as i32;
            values.push(&n32);
            values.push(&row.id);
            values.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
            db.execute(&user_sql, &values).expect("insert user");
            for (position, email) in row.emails.iter().enumerate() {
                let position = position as i32;
                let columns = email.columns();
                let mut values: Vec<&(dyn ToSql + Sync)> = vec![&row.id, &position];
                values.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
                db.execute(email_sql, &values).expect("insert email");
            }
        }
        rebuilt
    }

    /// The ids of `SELECT … WHERE … ORDER BY … LIMIT … OFFSET …`, the residual
    /// applied to the rows returned, and `COUNT(*)` with the same `WHERE`.
    fn run(
        db: &mut Client,
        mapping: &Mapping,
        filter: &Filter,
        sort: &Sort,
        page: Option<(usize, usize)>,
        rebuilt: &[Value],
    ) -> Option<(Vec<String>, usize)> {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let t = mapping
            .translate(filter, &schema, Dialect::Postgres)
            .expect("a residual, never an error");
        let order = mapping.order_by(sort, &schema, Dialect::Postgres)?;
        if page.is_some() && t.residual.is_some() {
            return None;
        }
        let limit = page.map_or(String::new(), |(start, count)| {
            format!(" LIMIT {count} OFFSET {}", start - 1)
        });
        let sql = format!(
            "SELECT id, n FROM users WHERE {} ORDER BY {}{limit}",
            t.sql, order.sql
        );
        let params: Vec<Box<dyn ToSql + Sync + '_>> = t.params.iter().map(param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
        let ids: Vec<String> = db
            .query(&sql, &refs)
            .unwrap_or_else(|e| panic!("{filter}: {e}\n{sql}\n{:?}", t.params))
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1) as usize))
            .filter(|(_, n)| {
                t.residual
                    .as_ref()
                    .is_none_or(|f| f.matches(&schema, &rebuilt[*n]))
            })
            .map(|(id, _)| id)
            .collect();
        let total = match page {
            Some(_) => {
                let count: i64 = db
                    .query_one(
                        &format!("SELECT COUNT(*) FROM users WHERE {}", t.sql),
                        &refs,
                    )
                    .expect("count")
                    .get(0);
                count as usize
            }
            None => ids.len(),
        };
        Some((ids, total))
    }

    fn by_id() -> Sort {
        Sort {
            by: scimkit::path::AttrPath::parse("id").expect("path"),
            order: scimkit::SortOrder::Ascending,
        }
    }

    #[test]
    fn postgres_tables_select_order_and_page_as_apply_query_does() {
        let Some(mut scratch) = Scratch::open(&tables(true)) else {
            return;
        };
        let mapping = mapping();
        let mut runner = TestRunner::new(Config {
            cases: 1_500,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (
            arb::filter(),
            proptest::collection::vec(arb::user(), 1..8),
            sort(),
            1usize..5,
            0usize..8,
        );
        let client = std::cell::RefCell::new(&mut scratch.client);
        let result = runner.run(&strategy, |(filter, users, sort, start, count)| {
            let users = normalized(users);
            let db = &mut client.borrow_mut();
            let rebuilt = load(db, &users);
            // Selection alone (ordered by id), then a sorted page.
            let all = run(db, &mapping, &filter, &by_id(), None, &rebuilt).map(|r| r.0);
            prop_assert_eq!(
                all,
                Some(expected(&filter, &rebuilt, &by_id())),
                "{}",
                filter
            );
            if let Some(page) = run(db, &mapping, &filter, &sort, Some((start, count)), &rebuilt) {
                prop_assert_eq!(
                    page,
                    expected_page(&filter, &rebuilt, &sort, start, count),
                    "{} sortBy {}",
                    filter,
                    sort.by
                );
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    #[test]
    fn postgres_tables_fixed_vectors() {
        let Some(mut scratch) = Scratch::open(&tables(true)) else {
            return;
        };
        let mapping = mapping();
        let rebuilt = load(&mut scratch.client, &fixed_users());
        for text in FIXED_FILTERS {
            let filter: Filter = text.parse().expect("parses");
            let found = run(
                &mut scratch.client,
                &mapping,
                &filter,
                &by_id(),
                None,
                &rebuilt,
            );
            assert_eq!(
                found.map(|r| r.0),
                Some(expected(&filter, &rebuilt, &by_id())),
                "{text}"
            );
        }
    }

    /// With indexes on the folded columns and the child table's key, the
    /// identity-provider look-ups are index scans.
    #[test]
    fn postgres_tables_plans_use_indexes() {
        let Some(mut scratch) = Scratch::open(&tables(true)) else {
            return;
        };
        let db = &mut scratch.client;
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        db.batch_execute(
            "CREATE UNIQUE INDEX users_id ON users (id); \
             CREATE INDEX users_user_name ON users (user_name_folded); \
             CREATE INDEX users_external_id ON users (external_id); \
             CREATE INDEX user_emails_value ON user_emails (value_folded); \
             CREATE INDEX user_emails_user ON user_emails (user_id);",
        )
        .expect("indexes");
        let users: Vec<Value> = (0..2_000usize)
            .map(|n| {
                serde_json::json!({
                    "userName": format!("User{n}@example.com"),
                    "externalId": format!("ext-{n}"),
                    "emails": [{"value": format!("user{n}@example.org"), "type": "work"}],
                })
            })
            .collect();
        load(db, &users);
        db.batch_execute("ANALYZE users; ANALYZE user_emails; SET enable_seqscan = off")
            .expect("analyze");
        for (text, index) in [
            (r#"userName eq "USER42@example.com""#, "users_user_name"),
            (r#"externalId eq "ext-42""#, "users_external_id"),
            (r#"id eq "u042""#, "users_id"),
            (
                r#"emails[value eq "user42@example.org"]"#,
                "user_emails_value",
            ),
            (
                r#"emails[type eq "work" and value eq "USER42@example.org"]"#,
                "user_emails_value",
            ),
        ] {
            let filter: Filter = text.parse().expect("parses");
            let t = mapping()
                .translate(&filter, &schema, Dialect::Postgres)
                .expect("translates");
            assert!(t.residual.is_none(), "{text}");
            let params: Vec<Box<dyn ToSql + Sync + '_>> = t.params.iter().map(param).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
            let plan: Vec<String> = db
                .query(
                    &format!("EXPLAIN SELECT n FROM users WHERE {}", t.sql),
                    &refs,
                )
                .expect("explain")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            let plan = plan.join("\n");
            assert!(plan.contains(index), "{text} does not use {index}:\n{plan}");
            let found = db
                .query(&format!("SELECT n FROM users WHERE {}", t.sql), &refs)
                .expect("query");
            assert_eq!(found.len(), 1, "{text}");
        }
    }
}
