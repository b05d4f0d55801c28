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
use shared::{FIXED_FILTERS, fixed_users, id, normalized};

fn sql_value(p: &Param) -> rusqlite::types::Value {
    match p {
        Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Param::Real(f) => rusqlite::types::Value::Real(*f),
        other => panic!("a parameter SQLite cannot take: {other:?}"),
    }
}

/// An in-memory database holding `users`: the `n`th has id `u00n` and its
/// comparison document.
fn load(users: &[Value]) -> Connection {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let db = Connection::open_in_memory().expect("sqlite");
    db.execute(
        "CREATE TABLE users (n INTEGER PRIMARY KEY, id TEXT NOT NULL, cmp TEXT NOT NULL)",
        [],
    )
    .expect("table");
    for (n, user) in users.iter().enumerate() {
        let cmp = comparison_document(&schema, user).to_string();
        db.execute(
            "INSERT INTO users VALUES (?1, ?2, ?3)",
            rusqlite::params![n as i64, id(n), cmp],
        )
        .expect("insert");
    }
    db
}

/// The `n` column of what `sql` selects with `params`, kept where the residual
/// (if any) also matches.
fn select(
    db: &Connection,
    sql: &str,
    params: &[Param],
    residual: Option<&Filter>,
    users: &[Value],
) -> Vec<usize> {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    stmt.query_map(params_from_iter(params.iter().map(sql_value)), |r| {
        r.get::<_, i64>(0)
    })
    .unwrap_or_else(|e| panic!("{e}\n{sql}"))
    .map(|r| r.expect("row") as usize)
    .filter(|&n| residual.is_none_or(|f| f.matches(&schema, &users[n])))
    .collect()
}

/// The users `filter` selects through SQLite (with the residual applied in memory),
/// and through `Filter::matches`.
fn both(filter: &Filter, users: &[Value]) -> (Vec<usize>, Vec<usize>) {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let db = load(users);
    let t = translate(filter, &schema, "cmp", Dialect::Sqlite);
    let sql = format!("SELECT n FROM users WHERE {} ORDER BY n", t.sql);
    let found = select(&db, &sql, &t.params, t.residual.as_ref(), users);
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
    let users = fixed_users();
    for text in FIXED_FILTERS {
        let filter: Filter = text.parse().expect("parses");
        let (found, expected) = both(&filter, &users);
        assert_eq!(found, expected, "{text}");
    }
}

mod sorting {
    //! `WHERE` and `ORDER BY` together select and order exactly as scimkit's
    //! `apply_query` does in memory, and `LIMIT`/`OFFSET` page it.
    use super::*;
    use scimkit::store::Sort;
    use scimkit_sql::{Translation, order_by};
    use shared::{expected, expected_page, sort};

    /// The translated `WHERE` and `ORDER BY`, with all their parameters.
    fn query(filter: &Filter, sort: &Sort) -> (Translation, String, Vec<Param>) {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let t = translate(filter, &schema, "cmp", Dialect::Sqlite);
        let order = order_by(
            sort,
            &schema,
            "cmp",
            "id",
            Dialect::Sqlite,
            t.params.len() + 1,
        );
        let params = t
            .params
            .iter()
            .chain(order.params.iter())
            .cloned()
            .collect();
        (t, order.sql, params)
    }

    fn sqlite(filter: &Filter, users: &[Value], sort: &Sort) -> Vec<String> {
        let db = load(users);
        let (t, order, params) = query(filter, sort);
        let sql = format!("SELECT n FROM users WHERE {} ORDER BY {order}", t.sql);
        select(&db, &sql, &params, t.residual.as_ref(), users)
            .into_iter()
            .map(id)
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
        let db = load(users);
        let (t, order, params) = query(filter, sort);
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
        let sql = format!(
            "SELECT n FROM users WHERE {} ORDER BY {order} LIMIT {count} OFFSET {}",
            t.sql,
            start_index - 1
        );
        let ids = select(&db, &sql, &params, None, users)
            .into_iter()
            .map(id)
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
