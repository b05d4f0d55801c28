//! The store's examples, run as their users run them: `cargo test` builds them next
//! to the test binaries.

use std::process::Command;

fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    Command::new(
        dir.join("examples")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX)),
    )
}

fn run(name: &str, arg: &std::path::Path) -> String {
    let out = example(name).arg(arg).output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each provisioned user gets the default role once, the deleted one loses it, and
/// a second run on the same databases reacts to nothing twice.
#[test]
fn default_role_reacts_once_to_each_event() {
    let dir = std::env::temp_dir().join(format!("scimkit_default_role_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = run("default_role", &dir);
    // Two creations, two deactivations, one deletion.
    assert!(first.contains("events handled: 5"), "{first}");
    let roles: Vec<&str> = first.lines().filter(|l| l.starts_with("role ")).collect();
    assert_eq!(roles.len(), 2, "{first}");
    assert!(roles[0].ends_with("viewer granted"), "{first}");
    assert!(roles[1].ends_with("viewer revoked"), "{first}");
    assert!(first.contains("deactivations recorded: 2"), "{first}");
    let second = run("default_role", &dir);
    assert!(second.contains("events handled: 0"), "{second}");
    assert!(second.contains("deactivations recorded: 2"), "{second}");
    assert_eq!(
        second.lines().filter(|l| l.starts_with("role ")).count(),
        2,
        "{second}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
