//! Differential tests: random filters over the same hostile users, answered by SQLite
//! running the translation and by `Filter::matches`, must select the same users.

#[path = "../../../tests/common/arb.rs"]
mod arb;
mod shared;

use std::sync::LazyLock;

use proptest::prelude::*;
use rusqlite::{Connection, params_from_iter};
use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit_sql::{Dialect, Param, Params, Translator, comparison_document, translate};
use serde_json::Value;
use shared::{FIXED_FILTERS, fixed_users, id, normalized};

fn sql_value(p: Param<'_>) -> rusqlite::types::Value {
    match p {
        Param::Text(s) => rusqlite::types::Value::Text(s.to_owned()),
        Param::Real(f) => rusqlite::types::Value::Real(f),
        Param::Bool(b) => rusqlite::types::Value::Integer(i64::from(b)),
        other => panic!("a parameter SQLite cannot take: {other:?}"),
    }
}

/// A translator that writes the guards of `shared::KEYS` on their columns (the
/// columns `load` fills in).
static KEYED: LazyLock<Translator> = LazyLock::new(|| shared::keyed(Dialect::Sqlite));

/// An in-memory database holding `users`: the `n`th has id `u00n`, its
/// comparison document, and the key columns of `shared::KEYS` as json_extract gives
/// them.
fn load(users: &[Value]) -> Connection {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let db = Connection::open_in_memory().expect("sqlite");
    db.execute(
        "CREATE TABLE users (n INTEGER PRIMARY KEY, id TEXT NOT NULL, cmp TEXT NOT NULL, \
         k_user_name, k_external_id, k_display_name, k_id)",
        [],
    )
    .expect("table");
    for (n, user) in users.iter().enumerate() {
        let cmp = comparison_document(&schema, user).to_string();
        db.execute(
            "INSERT INTO users VALUES (?1, ?2, ?3, json_extract(?3, '$.\"userName\"'), \
             json_extract(?3, '$.\"externalId\"'), json_extract(?3, '$.\"displayName\"'), \
             json_extract(?3, '$.\"id\"'))",
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
    params: &Params,
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
    // The guards on key columns select what those on the document do.
    let k = KEYED.translate(filter);
    let sql = format!("SELECT n FROM users WHERE {} ORDER BY n", k.sql);
    let keyed = select(&db, &sql, &k.params, k.residual.as_ref(), users);
    assert_eq!(keyed, found, "with key columns: {filter}\n{}", k.sql);
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
    fn query(filter: &Filter, sort: &Sort) -> (Translation, String, Params) {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let t = translate(filter, &schema, "cmp", Dialect::Sqlite);
        let order = order_by(sort, &schema, "cmp", "id", Dialect::Sqlite);
        let params = t.params.clone();
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

mod relational {
    //! The same comparisons on a host's own tables through a [`Mapping`]: columns,
    //! folded columns, a child table of emails, extension columns.
    use super::*;
    use rusqlite::types::Value as Sql;
    use scimkit::store::Sort;
    use scimkit_sql::Mapping;
    use shared::relational::{insert_email, insert_user, mapping, rows, tables};
    use shared::{SORT_PATHS, expected_page, sort};

    /// The tables holding `users`, and the users built back from the rows.
    fn load(users: &[Value]) -> (Connection, Vec<Value>) {
        let db = Connection::open_in_memory().expect("sqlite");
        db.execute_batch(&tables(false)).expect("tables");
        let (rows, rebuilt) = rows(users);
        for (n, row) in rows.iter().enumerate() {
            let mut values = vec![Sql::Integer(n as i64), Sql::Text(id(n))];
            values.extend(
                row.columns()
                    .into_iter()
                    .map(|c| c.map_or(Sql::Null, Sql::Text)),
            );
            db.execute(&insert_user(false), params_from_iter(values))
                .expect("insert user");
            for (position, email) in row.emails.iter().enumerate() {
                let mut values = vec![Sql::Text(id(n)), Sql::Integer(position as i64)];
                values.extend(
                    email
                        .columns()
                        .into_iter()
                        .map(|c| c.map_or(Sql::Null, Sql::Text)),
                );
                db.execute(insert_email(false), params_from_iter(values))
                    .expect("insert email");
            }
        }
        (db, rebuilt)
    }

    fn both(mapping: &Mapping, filter: &Filter, users: &[Value]) -> (Vec<usize>, Vec<usize>) {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let (db, rebuilt) = load(users);
        let t = mapping
            .translate(filter, &schema, Dialect::Sqlite)
            .expect("a residual, never an error");
        let sql = format!("SELECT n FROM users WHERE {} ORDER BY n", t.sql);
        let found = select(&db, &sql, &t.params, t.residual.as_ref(), &rebuilt);
        let expected: Vec<usize> = (0..rebuilt.len())
            .filter(|&n| filter.matches(&schema, &rebuilt[n]))
            .collect();
        (found, expected)
    }

    /// The ids of a page, and `totalResults`.
    type Page = (Vec<String>, usize);

    /// The ids of one page through SQL, and the total; `None` when the filter has a
    /// residual or the mapping cannot order by `sort`.
    fn page(
        mapping: &Mapping,
        filter: &Filter,
        users: &[Value],
        sort: &Sort,
        start_index: usize,
        count: usize,
    ) -> Option<(Page, Vec<Value>)> {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let t = mapping.translate(filter, &schema, Dialect::Sqlite).ok()?;
        let order = mapping.order_by(sort, &schema, Dialect::Sqlite)?;
        if t.residual.is_some() {
            return None;
        }
        let (db, rebuilt) = load(users);
        let total: i64 = db
            .query_row(
                &format!("SELECT COUNT(*) FROM users WHERE {}", t.sql),
                params_from_iter(t.params.iter().map(sql_value)),
                |r| r.get(0),
            )
            .expect("count");
        let sql = format!(
            "SELECT n FROM users WHERE {} ORDER BY {} LIMIT {count} OFFSET {}",
            t.sql,
            order.sql,
            start_index - 1
        );
        let ids = select(&db, &sql, &t.params, None, &rebuilt)
            .into_iter()
            .map(id)
            .collect();
        Some(((ids, total as usize), rebuilt))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn sqlite_tables_select_what_matches_selects(
            filter in arb::filter(),
            users in proptest::collection::vec(arb::user(), 1..8),
        ) {
            let users = normalized(users);
            let (found, expected) = both(&mapping(), &filter, &users);
            prop_assert_eq!(found, expected, "{}", filter);
        }

        #[test]
        fn sqlite_tables_page_as_apply_query_does(
            filter in arb::filter(),
            users in proptest::collection::vec(arb::user(), 1..8),
            sort in sort(),
            start_index in 1usize..5,
            count in 0usize..8,
        ) {
            let users = normalized(users);
            if let Some((page, rebuilt)) = page(&mapping(), &filter, &users, &sort, start_index, count) {
                prop_assert_eq!(page, expected_page(&filter, &rebuilt, &sort, start_index, count), "{} sortBy {}", filter, sort.by);
            }
        }
    }

    #[test]
    fn fixed_vectors() {
        let users = fixed_users();
        let mapping = mapping();
        for text in FIXED_FILTERS {
            let filter: Filter = text.parse().expect("parses");
            let (found, expected) = both(&mapping, &filter, &users);
            assert_eq!(found, expected, "{text}");
        }
    }

    /// Every sort the mapping can order by is ordered in SQL; the others are named.
    #[test]
    fn sorts_in_sql_except_where_the_mapping_cannot() {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let mapping = mapping();
        let users = fixed_users();
        let all: Filter = "userName pr or not (userName pr)".parse().expect("parses");
        for path in SORT_PATHS {
            for order in [
                scimkit::SortOrder::Ascending,
                scimkit::SortOrder::Descending,
            ] {
                let sort = Sort {
                    by: scimkit::path::AttrPath::parse(path).expect("path"),
                    order,
                };
                // `title` has no folded column; `phoneNumbers` is not mapped.
                let in_memory = ["title", "phoneNumbers.value"].contains(path);
                let Some((page, rebuilt)) = page(&mapping, &all, &users, &sort, 1, 100) else {
                    assert!(in_memory, "{path} should be ordered in SQL");
                    continue;
                };
                assert!(!in_memory, "{path} cannot be ordered exactly in SQL");
                assert_eq!(page, expected_page(&all, &rebuilt, &sort, 1, 100), "{path}");
                let _ = &schema;
            }
        }
    }

    /// With `Unmapped::Reject`, what the mapping cannot compare is a 400
    /// `invalidFilter` naming it; what it can is translated as before.
    #[test]
    fn reject_names_the_attribute() {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let strict = Mapping::builder(&schema, "users", "id")
            .column(
                "userName",
                scimkit_sql::Column::new("user_name").folded("user_name_folded"),
            )
            .column("title", "title")
            .unmapped(scimkit_sql::Unmapped::Reject)
            .build()
            .expect("mapping");
        for (text, named) in [
            (r#"nickName eq "x""#, "`nickName`"),
            (r#"userName eq "a" and emails co "x""#, "`emails`"),
            (r#"title eq "Boss""#, "`title` ignoring case"),
        ] {
            let filter: Filter = text.parse().expect("parses");
            let err = strict
                .translate(&filter, &schema, Dialect::Sqlite)
                .expect_err(text);
            assert_eq!(err.status(), 400, "{text}");
            assert_eq!(
                err.scim_type(),
                Some(scimkit::ScimType::InvalidFilter),
                "{text}"
            );
            assert!(err.detail().contains(named), "{text}: {}", err.detail());
        }
        let ok: Filter = r#"userName eq "A" and title pr"#.parse().expect("parses");
        let t = strict
            .translate(&ok, &schema, Dialect::Sqlite)
            .expect("translates");
        assert!(t.residual.is_none());
    }

    /// Mistakes in a mapping are found when it is built.
    #[test]
    fn bad_mappings_are_refused() {
        let registry = Registry::core();
        let schema = registry.resource_type("User").expect("User");
        let cases: Vec<(&str, Result<Mapping, scimkit_sql::MappingError>)> = vec![
            (
                "no such attribute",
                Mapping::builder(&schema, "users", "id")
                    .column("nope", "x")
                    .build(),
            ),
            (
                "multi-valued",
                Mapping::builder(&schema, "users", "id")
                    .column("emails.value", "x")
                    .build(),
            ),
            (
                "complex",
                Mapping::builder(&schema, "users", "id")
                    .column("name", "x")
                    .build(),
            ),
            (
                "identifier",
                Mapping::builder(&schema, "users", "id")
                    .column("title", "title; DROP TABLE users")
                    .build(),
            ),
            (
                "folded caseExact",
                Mapping::builder(&schema, "users", "id")
                    .column("externalId", scimkit_sql::Column::new("e").folded("f"))
                    .build(),
            ),
            (
                "folded boolean",
                Mapping::builder(&schema, "users", "id")
                    .column("active", scimkit_sql::Column::new("a").folded("f"))
                    .build(),
            ),
            (
                "twice",
                Mapping::builder(&schema, "users", "id")
                    .column("title", "a")
                    .column("TITLE", "b")
                    .build(),
            ),
            (
                "id twice",
                Mapping::builder(&schema, "users", "id")
                    .column("id", "other")
                    .build(),
            ),
            (
                "child of single",
                Mapping::builder(&schema, "users", "id")
                    .child("title", scimkit_sql::Child::new("t", "k"))
                    .build(),
            ),
            (
                "child sub",
                Mapping::builder(&schema, "users", "id")
                    .child(
                        "emails",
                        scimkit_sql::Child::new("t", "k").column("nope", "x"),
                    )
                    .build(),
            ),
            (
                "alias prefix",
                Mapping::builder(&schema, "scim_users", "id").build(),
            ),
        ];
        for (what, result) in cases {
            let err = result.expect_err(what);
            assert!(!err.to_string().is_empty(), "{what}");
        }
    }
}
