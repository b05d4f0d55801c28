//! Adding an email with `"primary": true` removed the `primary` key from the others;
//! RFC 7644 §3.5.2 says the server SHALL set `primary` to `false` on them.

use scimkit::service::Request;
use serde_json::json;

#[test]
fn the_old_primary_becomes_false() {
    let svc = super::service();
    let id = super::create_user(
        &svc,
        json!({"userName": "a", "emails": [{"value": "a@work", "type": "work", "primary": true}, {"value": "a@home", "type": "home"}]}),
    );
    let ops = json!([{"op": "add", "path": "emails", "value": [{"value": "a@new", "type": "other", "primary": true}]}]);
    let (status, user) = super::call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&super::patch_op(ops)),
    );
    assert_eq!(status, 200, "{user}");
    assert_eq!(
        user["emails"],
        json!([
            {"value": "a@work", "type": "work", "primary": false},
            {"value": "a@home", "type": "home"},
            {"value": "a@new", "type": "other", "primary": true}
        ])
    );
    // Through a value path, as Entra ID sends it.
    let ops =
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"}]);
    let (status, user) = super::call(
        &svc,
        Request::new("PATCH", &format!("/Users/{id}")).with_json(&super::patch_op(ops)),
    );
    assert_eq!(status, 200, "{user}");
    let primaries: Vec<_> = user["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .map(|e| e.get("primary").cloned())
        .collect();
    assert_eq!(
        primaries,
        [Some(json!(false)), Some(json!(true)), Some(json!(false))]
    );
}
