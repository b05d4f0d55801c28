//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

pub mod arb;
pub mod scenarios;

/// The workspace's `tests/` directory, also from a member crate's tests.
fn tests_dir() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("tests").join("fixtures").is_dir() {
        if !dir.pop() {
            break;
        }
    }
    dir.join("tests")
}

/// Reads a JSON file relative to `tests/`.
pub fn json(rel: &str) -> Value {
    let path = tests_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a text file relative to `tests/`.
pub fn text(rel: &str) -> String {
    let path = tests_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
