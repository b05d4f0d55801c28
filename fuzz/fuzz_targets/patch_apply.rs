//! A PatchOp decoded from arbitrary JSON and applied to a User and a Group, lenient
//! and strict: a failed apply leaves the resource byte for byte as it was, and a
//! successful one never changes a readOnly attribute (`id`, `meta`, a user's `groups`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimkit::patch::{self, PatchOptions};
use scimkit::schema::Mutability;
use scimkit::{PatchOp, Registry};
use serde_json::Value;

const USER: &str = include_str!("../../tests/vectors/rfc7643/enterprise-user.json");
const GROUP: &str = include_str!("../../tests/vectors/rfc7643/group.json");

fuzz_target!(|data: &[u8]| {
    let Ok(op) = serde_json::from_slice::<PatchOp>(data) else {
        return;
    };
    let registry = Registry::core();
    for (name, text) in [("User", USER), ("Group", GROUP)] {
        let schema = registry.resource_type(name).expect("built-in type");
        let original: Value = serde_json::from_str(text).expect("fixture");
        let before = serde_json::to_vec(&original).expect("json");
        for options in [PatchOptions::lenient(), PatchOptions::strict()] {
            let mut doc = original.clone();
            match patch::apply(&schema, &mut doc, &op, &options) {
                Err(e) => {
                    assert!(e.status() == 400 || e.status() == 413, "{e}");
                    let after = serde_json::to_vec(&doc).expect("json");
                    assert_eq!(after, before, "a failed PATCH changed the {name}: {e}");
                }
                Ok(outcome) => {
                    // Every readOnly attribute the schema defines (`id`, `meta`, a
                    // user's `groups`) is as it was.
                    let keys = original
                        .as_object()
                        .into_iter()
                        .chain(doc.as_object())
                        .flat_map(|o| o.keys());
                    for key in keys {
                        let read_only = schema
                            .attribute(None, key)
                            .is_some_and(|a| a.attribute.mutability() == Mutability::ReadOnly);
                        if read_only {
                            assert_eq!(
                                doc.get(key),
                                original.get(key),
                                "a PATCH changed the {name}'s readOnly {key}"
                            );
                        }
                    }
                    assert_eq!(outcome.changed, doc != original);
                }
            }
        }
    }
});
