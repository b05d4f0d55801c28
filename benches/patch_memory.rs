//! Memory one PATCH allocates, counted by dhat's heap profiler: adding one member to,
//! and removing one member from, groups of 10, 10,000 and 100,000 members, and the
//! Entra ID four-operation user update. The bytes must follow the size of the change,
//! not the size of the resource. Prints a table (`cargo bench --bench patch_memory`).

use scimkit::patch::{self, PatchOptions};
use scimkit::{PatchOp, Registry};
use serde_json::{Value, json};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn group(members: usize) -> Value {
    let list: Vec<Value> = (0..members)
        .map(|i| json!({"value": format!("2819c223-7f76-453a-919d-{i:012}"), "display": format!("User {i}")}))
        .collect();
    let mut list = list;
    // Room for one more, as a list that has grown has, so that the append measures
    // the PATCH and not the vector's doubling.
    list.reserve(1);
    let mut doc =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"});
    doc["members"] = Value::Array(list);
    doc
}

fn op(ops: Value) -> PatchOp {
    serde_json::from_value(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
    )
    .expect("PatchOp")
}

/// Bytes and blocks allocated while `f` runs.
fn allocated(f: impl FnOnce()) -> (u64, u64) {
    let before = dhat::HeapStats::get();
    f();
    let after = dhat::HeapStats::get();
    (
        after.total_bytes - before.total_bytes,
        after.total_blocks - before.total_blocks,
    )
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let registry = Registry::core();
    let groups = registry.resource_type("Group").expect("Group");
    let users = registry.resource_type("User").expect("User");
    let options = PatchOptions::default();
    let add = op(
        json!([{"op": "add", "path": "members", "value": [{"value": "f648f8d5-ea4e-4cd3-8e9c-000000000001"}]}]),
    );
    let remove = op(
        json!([{"op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-000000000005\"]"}]),
    );
    println!(
        "{:<44} {:>10} {:>14} {:>8}",
        "PATCH", "members", "bytes", "blocks"
    );
    for size in [10usize, 10_000, 100_000] {
        for (name, patch) in [
            ("add 1 member", &add),
            ("remove 1 member by filter", &remove),
        ] {
            let mut doc = group(size);
            let (bytes, blocks) = allocated(|| {
                patch::apply(&groups, &mut doc, patch, &options).expect("applies");
            });
            println!("{name:<44} {size:>10} {bytes:>14} {blocks:>8}");
        }
    }
    let user: Value = serde_json::from_str(include_str!(
        "../tests/vectors/rfc7643/enterprise-user.json"
    ))
    .expect("user");
    let entra: Value = serde_json::from_str(include_str!(
        "../tests/fixtures/patch/entra-update-user.json"
    ))
    .expect("fixture");
    let entra: PatchOp = serde_json::from_value(entra["request"].clone()).expect("PatchOp");
    let mut doc = user.clone();
    let (bytes, blocks) = allocated(|| {
        patch::apply(&users, &mut doc, &entra, &options).expect("applies");
    });
    println!(
        "{:<44} {:>10} {bytes:>14} {blocks:>8}",
        "Entra ID 4-operation update (full user)", "-"
    );
}
