//! Translating filters to SQL: a simple equality and a 20-clause filter, for SQLite
//! and PostgreSQL, on the comparison document (from scratch with `translate`, and
//! with a `Translator` that has seen these filters before, with other values)
//! and on a host's tables through a `Mapping`, and building one comparison
//! document. Target: a 20-clause filter in 2 µs or less.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit::schema::SharedResourceSchema;
use scimkit_sql::{Child, Column, Dialect, Mapping, Translator, comparison_document, translate};
use std::hint::black_box;
use std::sync::Arc;

const SIMPLE: &str = r#"userName eq "bjensen@example.com""#;
const TWENTY: &str = concat!(
    r#"userName eq "bjensen@example.com" and displayName co "Babs Jensen" and title sw "Tour Guide" and "#,
    r#"userType eq "Employee" and active eq true and emails.value ew "@example.com" and emails.type eq "work" and "#,
    r#"name.familyName eq "Jensen" and name.givenName sw "Bar" and externalId pr or (meta.lastModified gt "2011-05-13T04:42:34Z" and "#,
    r#"meta.created lt "2030-01-01T00:00:00Z" and nickName ne "Babs" and locale eq "en-US" and timezone eq "America/Los_Angeles" and "#,
    r#"phoneNumbers.value co "555" and addresses.country eq "USA" and preferredLanguage sw "en" and ims.value pr and x509Certificates pr)"#
);
const FULL_USER: &str = include_str!("../../../tests/vectors/rfc7643/enterprise-user.json");

fn bench(c: &mut Criterion) {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let mut g = c.benchmark_group("sql/translate");
    for (name, text) in [("simple", SIMPLE), ("twenty_clauses", TWENTY)] {
        let filter: Filter = text.parse().expect("parses");
        for (dialect, label) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| translate(black_box(&filter), &users, "cmp", dialect))
            });
        }
    }
    // A translator that has translated each of these filters once, with other
    // values: what a store's translator has seen after its first few requests.
    let shared = SharedResourceSchema::new(Arc::new(Registry::core()), "User").expect("User");
    for (dialect, label) in [
        (Dialect::Sqlite, "sqlite_translator"),
        (Dialect::Postgres, "postgres_translator"),
    ] {
        let translator = Translator::new(shared.clone(), "cmp", dialect);
        for (name, text) in [("simple", SIMPLE), ("twenty_clauses", TWENTY)] {
            let seen: Filter = text
                .replace("bjensen", "jsmith")
                .replace("Babs", "Jim")
                .parse()
                .expect("parses");
            translator.translate(&seen);
            let filter: Filter = text.parse().expect("parses");
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| translator.translate(black_box(&filter)))
            });
        }
    }
    // The same filters on a host's own tables, every attribute they name mapped.
    let mapping = Mapping::builder(&users, "users", "id")
        .column(
            "userName",
            Column::new("user_name").folded("user_name_folded"),
        )
        .column(
            "displayName",
            Column::new("display_name").folded("display_name_folded"),
        )
        .column("title", Column::new("title").folded("title_folded"))
        .column(
            "userType",
            Column::new("user_type").folded("user_type_folded"),
        )
        .column("active", "active")
        .column("externalId", "external_id")
        .column(
            "name.familyName",
            Column::new("family_name").folded("family_name_folded"),
        )
        .column(
            "name.givenName",
            Column::new("given_name").folded("given_name_folded"),
        )
        .column("meta.created", "created")
        .column("meta.lastModified", "last_modified")
        .column(
            "nickName",
            Column::new("nick_name").folded("nick_name_folded"),
        )
        .column("locale", Column::new("locale").folded("locale_folded"))
        .column(
            "timezone",
            Column::new("timezone").folded("timezone_folded"),
        )
        .column(
            "preferredLanguage",
            Column::new("language").folded("language_folded"),
        )
        .child(
            "emails",
            Child::new("user_emails", "user_id")
                .column("value", Column::new("value").folded("value_folded"))
                .column("type", Column::new("type").folded("type_folded")),
        )
        .child(
            "phoneNumbers",
            Child::new("user_phones", "user_id")
                .column("value", Column::new("value").folded("value_folded")),
        )
        .child(
            "addresses",
            Child::new("user_addresses", "user_id")
                .column("country", Column::new("country").folded("country_folded")),
        )
        .child(
            "ims",
            Child::new("user_ims", "user_id")
                .column("value", Column::new("value").folded("value_folded")),
        )
        .child(
            "x509Certificates",
            Child::new("user_certificates", "user_id").column("value", "value"),
        )
        .build()
        .expect("mapping");
    for (name, text) in [("simple", SIMPLE), ("twenty_clauses", TWENTY)] {
        let filter: Filter = text.parse().expect("parses");
        for (dialect, label) in [
            (Dialect::Sqlite, "sqlite_tables"),
            (Dialect::Postgres, "postgres_tables"),
        ] {
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| mapping.translate(black_box(&filter), &users, dialect))
            });
        }
    }
    g.finish();
    let user: serde_json::Value = serde_json::from_str(FULL_USER).expect("user");
    c.bench_function("sql/comparison_document/enterprise_user", |b| {
        b.iter(|| comparison_document(&users, black_box(&user)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
