//! The small command-line examples, run as their users run them: `cargo test` builds
//! them next to the test binaries.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    Command::new(
        dir.join("examples")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX)),
    )
}

fn file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}

#[test]
fn patch_example_prints_the_patched_resource_or_the_error() {
    let out = example("patch")
        .arg(file("vectors/rfc7643/minimal-user.json"))
        .arg(file("fixtures/patch/entra-update-user.json"))
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(user["active"], false);
    assert_eq!(
        user["emails"][0],
        serde_json::json!({"type": "work", "value": "updatedEmail@microsoft.com"})
    );

    let out = example("patch")
        .arg(file("vectors/rfc7643/minimal-user.json"))
        .arg(file("fixtures/patch/entra-update-user.json"))
        .arg("--strict")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stdout).expect("SCIM error on stdout");
    assert_eq!(
        err["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(err["scimType"], "noTarget");
    assert!(
        err["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("Operations[0]"))
    );
}

#[test]
fn filter_example_explains_and_evaluates() {
    let out = example("filter")
        .arg(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#)
        .arg(file("vectors/rfc7643/full-user.json"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("each value of emails where"), "{text}");
    assert!(text.contains("matches"), "{text}");

    let out = example("filter")
        .arg(r#"userName eq "nobody""#)
        .arg(file("vectors/rfc7643/full-user.json"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));

    let out = example("filter")
        .arg(r#"userName equals "x""#)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stdout).expect("SCIM error on stdout");
    assert_eq!(err["scimType"], "invalidFilter");
}
