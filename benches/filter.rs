//! Filter parsing and evaluation: a simple equality and the RFC's longest example,
//! against the RFC 7643 §8.2 full user, with a serde_json parse of the user as the floor.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use scimkit::Registry;
use scimkit::filter::Filter;
use std::hint::black_box;

const FULL_USER: &str = include_str!("../tests/vectors/rfc7643/full-user.json");
const SIMPLE: &str = r#"userName eq "bjensen@example.com""#;
const COMPLEX: &str =
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#;
const VALUE_PATH: &str = r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#;

fn filters(c: &mut Criterion) {
    let registry = Registry::core();
    let users = registry.resource_type("User").expect("User");
    let user: serde_json::Value = serde_json::from_str(FULL_USER).expect("full user");

    let mut parse = c.benchmark_group("filter/parse");
    for (name, text) in [
        ("simple", SIMPLE),
        ("complex", COMPLEX),
        ("value_path", VALUE_PATH),
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
    ] {
        let filter = Filter::parse(text).expect("parses");
        eval.bench_function(name, |b| {
            b.iter(|| filter.matches(&users, black_box(&user)))
        });
    }
    eval.finish();

    let mut floor = c.benchmark_group("filter/floor");
    floor.throughput(Throughput::Bytes(FULL_USER.len() as u64));
    floor.bench_function("serde_json_parse_full_user", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(FULL_USER)).expect("json"))
    });
    floor.finish();
}

criterion_group!(benches, filters);
criterion_main!(benches);
