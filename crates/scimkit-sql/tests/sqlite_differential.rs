//! Differential tests: random filters over the same hostile users, answered by SQLite
//! running the translation and by `Filter::matches`, must select the same users.

#[path = "../../../tests/common/arb.rs"]
mod arb;
mod shared;

use proptest::prelude::*;
use rusqlite::{Connection, params_from_iter};
use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit_sql::{Dialect, Param, comparison_document, translate};
use serde_json::Value;
use shared::normalized;

fn sql_value(p: &Param) -> rusqlite::types::Value {
    match p {
        Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Param::Real(f) => rusqlite::types::Value::Real(*f),
        other => panic!("a parameter SQLite cannot take: {other:?}"),
    }
}

/// The ids `filter` selects among `users` through SQLite (with the residual applied
/// in memory), and through `Filter::matches`.
fn both(filter: &Filter, users: &[Value]) -> (Vec<usize>, Vec<usize>) {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let db = Connection::open_in_memory().expect("sqlite");
    db.execute(
        "CREATE TABLE users (n INTEGER PRIMARY KEY, cmp TEXT NOT NULL)",
        [],
    )
    .expect("table");
    for (n, user) in users.iter().enumerate() {
        let cmp = comparison_document(&schema, user).to_string();
        db.execute(
            "INSERT INTO users VALUES (?1, ?2)",
            rusqlite::params![n as i64, cmp],
        )
        .expect("insert");
    }
    let t = translate(filter, &schema, "cmp", Dialect::Sqlite);
    let sql = format!("SELECT n FROM users WHERE {} ORDER BY n", t.sql);
    let mut stmt = db
        .prepare(&sql)
        .unwrap_or_else(|e| panic!("{filter}: {e}\n{sql}"));
    let found: Vec<usize> = stmt
        .query_map(params_from_iter(t.params.iter().map(sql_value)), |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or_else(|e| panic!("{filter}: {e}\n{sql}"))
        .map(|r| r.expect("row") as usize)
        .filter(|&n| {
            t.residual
                .as_ref()
                .is_none_or(|f| f.matches(&schema, &users[n]))
        })
        .collect();
    let expected: Vec<usize> = (0..users.len())
        .filter(|&n| filter.matches(&schema, &users[n]))
        .collect();
    (found, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn sqlite_selects_what_matches_selects(
        filter in arb::filter(),
        users in proptest::collection::vec(arb::user(), 1..8),
    ) {
        let users = normalized(users);
        let (found, expected) = both(&filter, &users);
        prop_assert_eq!(found, expected, "{}", filter);
    }
}

/// Disagreements found so far, kept as fixed vectors.
#[test]
fn fixed_vectors() {
    let users: Vec<Value> = normalized(vec![
        serde_json::json!({"userName": "a", "externalId": "x1"}),
        serde_json::json!({"userName": "b"}),
        serde_json::json!({"userName": "x%y", "title": "", "emails": [{"value": "A@X", "type": "work"}]}),
        serde_json::json!({"userName": "xay", "emails": [{"value": "b@x", "type": "home"}, {"value": "c@x", "type": "work"}]}),
        serde_json::json!({"userName": "\u{212A}elvin", "meta": {"created": "2011-05-13T06:42:34+02:00"}}),
    ]);
    for text in [
        r#"externalId ne "x1""#,
        r#"not (externalId sw "x")"#,
        r#"userName co "%""#,
        r#"userName sw "x_""#,
        r#"userName eq "KELVIN""#,
        r#"userName eq "kelvin""#,
        r#"title pr"#,
        r#"title eq """#,
        r#"emails[type eq "work" and value co "@x"]"#,
        r#"emails[type eq "home" and value eq "c@x"]"#,
        r#"meta.created eq "2011-05-13T04:42:34Z""#,
        r#"meta.created gt "2011-05-13T04:00:00-01:00""#,
        r#"meta.created co "06:42""#,
        r#"emails pr"#,
        r#"emails eq "a@x""#,
        r#"name pr"#,
        r#"password pr"#,
        r#"userName lt "b\u0000""#,
        r#"userName ne "a\u0000""#,
    ] {
        let filter: Filter = text.parse().expect("parses");
        let (found, expected) = both(&filter, &users);
        assert_eq!(found, expected, "{text}");
    }
}

mod sorting {
    //! `WHERE` and `ORDER BY` together select and order exactly as scimkit's
    //! `apply_query` does in memory.
    use super::*;
    use scimkit::store::Sort;
    use scimkit_sql::order_by;
    use shared::{expected, expected_page, id, sort};

    fn sqlite(filter: &Filter, users: &[Value], sort: &Sort) -> Vec<String> {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let db = Connection::open_in_memory().expect("sqlite");
        db.execute(
            "CREATE TABLE users (id TEXT PRIMARY KEY, n INTEGER, cmp TEXT NOT NULL)",
            [],
        )
        .expect("table");
        for (n, user) in users.iter().enumerate() {
            let cmp = comparison_document(&schema, user).to_string();
            db.execute(
                "INSERT INTO users VALUES (?1, ?2, ?3)",
                rusqlite::params![id(n), n as i64, cmp],
            )
            .expect("insert");
        }
        let t = translate(filter, &schema, "cmp", Dialect::Sqlite);
        let order = order_by(
            sort,
            &schema,
            "cmp",
            "id",
            Dialect::Sqlite,
            t.params.len() + 1,
        );
        let sql = format!(
            "SELECT id, n FROM users WHERE {} ORDER BY {}",
            t.sql, order.sql
        );
        let params = t.params.iter().chain(order.params.iter()).map(sql_value);
        let mut stmt = db.prepare(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        stmt.query_map(params_from_iter(params), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .map(|r| r.expect("row"))
        .filter(|(_, n)| {
            t.residual
                .as_ref()
                .is_none_or(|f| f.matches(&schema, &users[*n as usize]))
        })
        .map(|(id, _)| id)
        .collect()
    }

    /// One page (RFC 7644 §3.4.2.4) through SQL: `LIMIT`/`OFFSET` on the order, and
    /// `totalResults` from `COUNT(*)` with the same `WHERE`; `None` when the filter
    /// has a residual (then the page is cut after evaluating it).
    fn sqlite_page(
        filter: &Filter,
        users: &[Value],
        sort: &Sort,
        start_index: usize,
        count: usize,
    ) -> Option<(Vec<String>, usize)> {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let db = Connection::open_in_memory().expect("sqlite");
        db.execute(
            "CREATE TABLE users (id TEXT PRIMARY KEY, cmp TEXT NOT NULL)",
            [],
        )
        .expect("table");
        for (n, user) in users.iter().enumerate() {
            let cmp = comparison_document(&schema, user).to_string();
            db.execute(
                "INSERT INTO users VALUES (?1, ?2)",
                rusqlite::params![id(n), cmp],
            )
            .expect("insert");
        }
        let t = translate(filter, &schema, "cmp", Dialect::Sqlite);
        if t.residual.is_some() {
            return None;
        }
        let total: i64 = db
            .query_row(
                &format!("SELECT COUNT(*) FROM users WHERE {}", t.sql),
                params_from_iter(t.params.iter().map(sql_value)),
                |r| r.get(0),
            )
            .expect("count");
        let order = order_by(
            sort,
            &schema,
            "cmp",
            "id",
            Dialect::Sqlite,
            t.params.len() + 1,
        );
        let sql = format!(
            "SELECT id FROM users WHERE {} ORDER BY {} LIMIT {} OFFSET {}",
            t.sql,
            order.sql,
            count,
            start_index - 1
        );
        let params = t.params.iter().chain(order.params.iter()).map(sql_value);
        let mut stmt = db.prepare(&sql).expect("prepare");
        let ids = stmt
            .query_map(params_from_iter(params), |r| r.get::<_, String>(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        Some((ids, total as usize))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn sqlite_pages_as_apply_query_does(
            filter in arb::filter(),
            users in proptest::collection::vec(arb::user(), 1..8),
            sort in sort(),
            start_index in 1usize..5,
            count in 0usize..4,
        ) {
            let users = normalized(users);
            if let Some(page) = sqlite_page(&filter, &users, &sort, start_index, count) {
                prop_assert_eq!(page, expected_page(&filter, &users, &sort, start_index, count), "{}", filter);
            }
        }

        #[test]
        fn sqlite_orders_as_apply_query_does(
            filter in arb::filter(),
            users in proptest::collection::vec(arb::user(), 1..8),
            sort in sort(),
        ) {
            let users = normalized(users);
            prop_assert_eq!(sqlite(&filter, &users, &sort), expected(&filter, &users, &sort), "{} sortBy {}", filter, sort.by);
        }
    }
}
