//! PUT dropped read-only values the server keeps, such as the enterprise
//! `manager.displayName`.

use scimkit::service::Request;
use scimkit::store::{MemoryStore, Projection, Record, Store};
use serde_json::json;

#[test]
fn read_only_values_survive_a_put() {
    let svc = super::service();
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let id = super::create_user(
        &svc,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent], "userName": "a", ent: {"manager": {"value": "m1"}}}),
    );
    // The server (not the client) fills in the manager's display name.
    let store: &MemoryStore<()> = svc.store();
    let mut record: Record =
        super::block_on(store.get(&(), "User", &id, &Projection::all())).expect("stored");
    record.resource[ent]["manager"]["displayName"] = json!("Manny Ager");
    let version = record.version;
    super::block_on(store.replace(&(), "User", record, version, &[], &[])).expect("replaced");
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent], "userName": "a", ent: {"manager": {"value": "m1", "displayName": "Client Says"}}});
    let (status, user) = super::call(
        &svc,
        Request::new("PUT", &format!("/Users/{id}")).with_json(&put),
    );
    assert_eq!(status, 200, "{user}");
    assert_eq!(
        user[ent]["manager"],
        json!({"value": "m1", "displayName": "Manny Ager"})
    );
}
