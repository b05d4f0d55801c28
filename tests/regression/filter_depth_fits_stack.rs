//! `FilterOptions::max_depth` could be raised until a nested filter overflowed the
//! stack and aborted the process. The setting is now capped at
//! `FilterOptions::MAX_DEPTH`, and everything done with a filter that deep fits a
//! 2 MiB thread (the default for spawned threads) in an unoptimised build.

use scimkit::Registry;
use scimkit::filter::{Filter, FilterOptions};
use scimkit::path::Path;
use serde_json::json;

fn nested_not(depth: usize) -> String {
    format!("{}userName pr{}", "not (".repeat(depth), ")".repeat(depth))
}

fn nested_and_or(depth: usize) -> String {
    let mut s = String::new();
    for i in 0..depth {
        let op = if i % 2 == 0 { "and" } else { "or" };
        s.push_str(&format!("title eq \"t{i}\" {op} ("));
    }
    s.push_str("emails[type eq \"work\" and not (value ew \"@x\")]");
    s.push_str(&")".repeat(depth));
    s
}

#[test]
fn the_cap_applies_whatever_the_setting() {
    let options = FilterOptions::default().max_depth(1_000_000);
    let too_deep = nested_not(FilterOptions::MAX_DEPTH + 1);
    let err = options.parse(&too_deep).unwrap_err();
    assert!(
        err.to_string().contains("nested more than 128 levels"),
        "{err}"
    );
    assert!(options.parse(&nested_not(FilterOptions::MAX_DEPTH)).is_ok());
    // Far beyond the cap: still an error, not a crash.
    assert!(options.parse(&nested_not(100_000)).is_err());
}

#[test]
fn a_filter_at_the_cap_fits_a_2_mib_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let options = FilterOptions::default().max_depth(usize::MAX);
            let registry = Registry::core();
            let users = registry.resource_type("User").expect("User");
            let user = json!({"userName": "a", "title": "t3", "emails": [{"type": "work", "value": "a@y"}]});
            // The deepest filters the cap lets through: `not (` counts once, and the
            // value filter with its `not (` at the bottom of the other counts twice.
            let depth = FilterOptions::MAX_DEPTH;
            for text in [nested_not(depth), nested_and_or(depth - 2)] {
                let filter = options.parse(&text).expect("parses at the cap");
                let printed = filter.to_string();
                let again: Filter = options.parse(&printed).expect("its display parses");
                assert_eq!(again, filter);
                let _ = format!("{filter:?}");
                let copy = filter.clone();
                filter.check(&users).expect("checks");
                let _ = filter.matches(&users, &user);
                drop(copy);
            }
            // A PATCH path's value filter is one level more.
            let text = format!("emails[{}]", nested_not(depth - 1));
            assert!(Path::parse_with(&format!("emails[{}]", nested_not(depth)), &options).is_err());
            let path = Path::parse_with(&text, &options).expect("path parses at the cap");
            assert_eq!(path.to_string(), text);
        })
        .expect("thread");
    worker.join().expect("no stack overflow");
}
