//! One regression test per bug found, each in its own file.

#[path = "../common/mod.rs"]
mod common;

mod bulk_location;
mod failed_patch_keeps_empty_members;
mod filter_depth_fits_stack;
mod filter_on_derived_groups;
mod filtered_write_never_invents_members;
mod many_filtered_removes;
mod member_display_path;
mod non_ascii_patch_key;
mod nothing_lands_in_read_only;
mod password_change_disabled;
mod primary_moves_to_the_new_value;
mod projection_parsed_before_write;
mod put_keeps_read_only;
mod read_only_through_value_filter;
mod removing_required_is_mutability;
mod replace_creates_with_filter_fields;
mod required_and_strict_sub_attributes;
mod resource_limits;
mod root_search_errors;
mod schemas_not_patchable;
mod secrets_not_searchable;
mod several_if_match_tags;
mod unknown_member_references;
mod urn_qualified_body_keys;

use std::future::Future;

use scimkit::service::{Request, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use serde_json::{Value, json};

/// MemoryStore's futures are ready at once.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

pub fn service() -> Service<MemoryStore<()>> {
    Service::new(MemoryStore::new(), ServiceConfig::default())
}

pub fn call(svc: &Service<MemoryStore<()>>, req: Request) -> (u16, Value) {
    let resp = block_on(svc.handle(&(), req));
    (resp.status, resp.json_body().unwrap_or(Value::Null))
}

pub fn create_user(svc: &Service<MemoryStore<()>>, body: Value) -> String {
    let (status, user) = call(svc, Request::new("POST", "/Users").with_json(&body));
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().expect("id").to_owned()
}

pub fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}
