//! Any JSON as a User or Group body: normalising and decoding never panic, and
//! normalising what normalising gave changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimkit::{Group, Registry, User};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let registry = Registry::core();
    for name in ["User", "Group"] {
        let schema = registry.resource_type(name).expect("built-in type");
        if let Ok(once) = schema.normalize(body.clone()) {
            let twice = schema
                .normalize(once.clone())
                .expect("normalised input normalises");
            assert_eq!(twice, once, "normalising is not idempotent for {name}");
        }
    }
    let _ = registry.decode::<User>(body.clone());
    let _ = registry.decode::<Group>(body);
});
