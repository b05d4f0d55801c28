//! Filter parsing and evaluation: a simple equality, a 20-clause filter and the RFC's
//! longest examples, evaluated against the RFC 7643 §8.2 full user and over 10,000
//! generated users (straightforward `Filter::matches` and the bound form), with a
//! serde_json parse of the user as the floor.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use scimkit::Registry;
use scimkit::filter::Filter;
use serde_json::{Value, json};
use std::hint::black_box;

const FULL_USER: &str = include_str!("../tests/vectors/rfc7643/full-user.json");
const SIMPLE: &str = r#"userName eq "bjensen@example.com""#;
const COMPLEX: &str =
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#;
const VALUE_PATH: &str = r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#;
/// Twenty clauses, 586 bytes.
const TWENTY: &str = concat!(
    r#"userName eq "bjensen@example.com" and displayName co "Babs Jensen" and title sw "Tour Guide" and "#,
    r#"userType eq "Employee" and active eq true and emails.value ew "@example.com" and emails.type eq "work" and "#,
    r#"name.familyName eq "Jensen" and name.givenName sw "Bar" and externalId pr or (meta.lastModified gt "2011-05-13T04:42:34Z" and "#,
    r#"meta.created lt "2030-01-01T00:00:00Z" and nickName ne "Babs" and locale eq "en-US" and timezone eq "America/Los_Angeles" and "#,
    r#"phoneNumbers.value co "555" and addresses.country eq "USA" and preferredLanguage sw "en" and ims.value pr and x509Certificates pr)"#
);
/// The issue's "medium" filter: `co` on a multi-valued attribute, `and` and `or`.
const MEDIUM: &str =
    r#"emails co "example.org" and (userType eq "Employee" or title sw "Tour") and active eq true"#;

fn users(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": format!("2819c223-7f76-453a-919d-{i:012}"),
                "userName": format!("user{i:05}@example.com"),
                "userType": if i % 3 == 0 { "Employee" } else { "Contractor" },
                "title": if i % 5 == 0 { "Tour Guide" } else { "Clerk" },
                "active": i % 7 != 0,
                "name": {"givenName": "User", "familyName": format!("Number {i}")},
                "emails": [
                    {"value": format!("user{i:05}@example.com"), "type": "work", "primary": true},
                    {"value": format!("user{i:05}@example.org"), "type": "home"}
                ]
            })
        })
        .collect()
}

fn filters(c: &mut Criterion) {
    let registry = Registry::core();
    let schema = registry.resource_type("User").expect("User");
    let user: Value = serde_json::from_str(FULL_USER).expect("full user");

    let mut parse = c.benchmark_group("filter/parse");
    for (name, text) in [
        ("simple", SIMPLE),
        ("complex", COMPLEX),
        ("value_path", VALUE_PATH),
        ("twenty_clauses", TWENTY),
    ] {
        parse.throughput(Throughput::Bytes(text.len() as u64));
        parse.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
            b.iter(|| Filter::parse(black_box(text)).expect("parses"))
        });
    }
    parse.finish();

    let mut eval = c.benchmark_group("filter/evaluate");
    for (name, text) in [
        ("simple", SIMPLE),
        ("complex", COMPLEX),
        ("value_path", VALUE_PATH),
        ("twenty_clauses", TWENTY),
    ] {
        let filter = Filter::parse(text).expect("parses");
        eval.bench_function(name, |b| {
            b.iter(|| filter.matches(&schema, black_box(&user)))
        });
    }
    eval.finish();

    let people = users(10_000);
    let mut many = c.benchmark_group("filter/evaluate_10000_users");
    many.sample_size(30);
    many.throughput(Throughput::Elements(people.len() as u64));
    for (name, text) in [
        ("user_name_eq", r#"userName eq "USER05000@example.com""#),
        ("medium", MEDIUM),
    ] {
        let filter = Filter::parse(text).expect("parses");
        many.bench_function(BenchmarkId::new("matches", name), |b| {
            b.iter(|| people.iter().filter(|u| filter.matches(&schema, u)).count())
        });
        many.bench_function(BenchmarkId::new("bound", name), |b| {
            b.iter(|| {
                let bound = filter.bind(&schema);
                people.iter().filter(|u| bound.matches(u)).count()
            })
        });
    }
    // The floor of the first: reading `userName` of every user with serde_json's own
    // look-up (`Value::get`, exact spelling) and comparing it ignoring ASCII case.
    // Memory, not comparisons, is what it costs: each user is a tree of allocations.
    many.bench_function("floor_serde_json_get_user_name", |b| {
        b.iter(|| {
            people
                .iter()
                .filter(|u| {
                    u.get("userName")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("USER05000@example.com"))
                })
                .count()
        })
    });
    many.finish();

    let mut floor = c.benchmark_group("filter/floor");
    floor.throughput(Throughput::Bytes(FULL_USER.len() as u64));
    floor.bench_function("serde_json_parse_full_user", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(FULL_USER)).expect("json"))
    });
    floor.finish();
}

criterion_group!(benches, filters);
criterion_main!(benches);
