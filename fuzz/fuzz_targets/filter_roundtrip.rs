//! Filter parse → display → parse gives the same filter; checking and evaluating
//! it against a user never panics, and the bound evaluator agrees with `matches`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimkit::Registry;
use scimkit::filter::{Filter, FilterOptions};

const USER: &str = include_str!("../../tests/vectors/rfc7643/enterprise-user.json");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The most permissive settings the library allows: the cap must hold.
    let options = FilterOptions::default()
        .max_len(usize::MAX)
        .max_depth(usize::MAX);
    let Ok(filter) = options.parse(text) else {
        return;
    };
    let printed = filter.to_string();
    let again: Filter = match options.parse(&printed) {
        Ok(f) => f,
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    };
    assert_eq!(again, filter, "{text:?} printed as {printed:?}");
    let registry = Registry::core();
    let user: serde_json::Value = serde_json::from_str(USER).expect("fixture");
    for name in ["User", "Group"] {
        let schema = registry.resource_type(name).expect("built-in type");
        let _ = filter.check(&schema);
        assert_eq!(
            filter.bind(&schema).matches(&user),
            filter.matches(&schema, &user),
            "{printed}"
        );
    }
});
