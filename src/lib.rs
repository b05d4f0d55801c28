//! # scimkit
//!
//! SCIM 2.0 for Rust services: the resource model and schemas of
//! [RFC 7643](https://www.rfc-editor.org/rfc/rfc7643), and the protocol pieces of
//! [RFC 7644](https://www.rfc-editor.org/rfc/rfc7644) that a service provider is
//! made of.
//!
//! What you find here:
//! - [`resource`]: typed [`User`] (every core attribute), [`EnterpriseUser`],
//!   [`Group`] and [`Meta`]; unknown attributes and extensions are kept, never dropped.
//! - [`message`]: [`ListResponse`], [`SearchRequest`], [`PatchOp`] and the bulk messages.
//! - [`schema`]: attribute characteristics, the RFC's built-in schemas, the discovery
//!   documents, and the [`Registry`] that resolves attribute names case-insensitively
//!   and normalises what identity providers send.
//! - [`filter`] and [`path`]: the filter language and PATCH paths (RFC 7644
//!   §3.4.2.2, §3.5.2): parse, print, evaluate by the schema.
//! - [`patch`]: the schema-aware, atomic PATCH engine, lenient for what identity
//!   providers send or strict.
//! - [`store`]: the storage trait a host implements, and [`store::MemoryStore`].
//! - [`service`]: the HTTP-agnostic service provider: a [`service::Request`] in, a
//!   [`service::Response`] out.
//! - [`Error`]: every failure as a SCIM error with HTTP status, `scimType` and detail.
//!
//! What you will *not* find: an HTTP server, a database or an async runtime. The crate
//! depends on none; the examples show the glue.
//!
//! ## A tour
//!
//! Read what Entra ID sends, attribute names in any case and booleans as strings:
//!
//! ```
//! use scimkit::{Registry, User};
//!
//! let body = serde_json::json!({
//!     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
//!                 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
//!     "UserName": "jdoe@contoso.com",
//!     "Active": "True",
//!     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
//!         "manager": "26118915-6090-4610-87e4-49d8ca9f808d"
//!     }
//! });
//! let user: User = Registry::core().decode(body)?;
//! assert_eq!(user.user_name.as_deref(), Some("jdoe@contoso.com"));
//! assert_eq!(user.active, Some(true));
//! let manager = user.enterprise.and_then(|e| e.manager).and_then(|m| m.value);
//! assert_eq!(manager.as_deref(), Some("26118915-6090-4610-87e4-49d8ca9f808d"));
//! # Ok::<(), scimkit::Error>(())
//! ```
//!
//! Parse a filter and apply a PatchOp, both by the schema:
//!
//! ```
//! use scimkit::{PatchOp, Registry, filter::Filter, patch::{self, PatchOptions}};
//! use serde_json::json;
//!
//! let registry = Registry::core();
//! let groups = registry.resource_type("Group").ok_or("no Group type")?;
//! let mut group = json!({
//!     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
//!     "displayName": "Tour Guides",
//!     "members": [{"value": "2819c223"}]
//! });
//! // Okta's membership change: remove by filter, add with a display name.
//! let op: PatchOp = serde_json::from_value(json!({
//!     "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
//!     "Operations": [
//!         {"op": "remove", "path": "members[value eq \"2819c223\"]"},
//!         {"op": "add", "path": "members", "value": [{"value": "902c246b", "display": "Mandy"}]}
//!     ]
//! }))?;
//! patch::apply(&groups, &mut group, &op, &PatchOptions::default())?;
//! assert_eq!(group["members"], json!([{"value": "902c246b", "display": "Mandy"}]));
//!
//! let filter: Filter = r#"members[value eq "902C246B"]"#.parse()?;
//! assert!(filter.matches(&groups, &group)); // members.value is not caseExact
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Serve SCIM from the in-memory store (any HTTP stack hands over a
//! [`service::Request`] and writes out the [`service::Response`]):
//!
//! ```
//! use scimkit::service::{Request, Service, ServiceConfig};
//! use scimkit::store::MemoryStore;
//! use serde_json::json;
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//!
//! let service = Service::new(MemoryStore::<()>::new(), ServiceConfig::default());
//! let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen"});
//! let created = block_on(service.handle(&(), Request::new("POST", "/Users").with_json(&body)));
//! assert_eq!(created.status, 201);
//! let missing = block_on(service.handle(&(), Request::new("GET", "/Users/nope")));
//! assert_eq!(missing.status, 404);
//! assert_eq!(missing.json_body().map(|b| b["status"].clone()), Some(json!("404")));
//! ```
//!
//! Turn a failure into the SCIM error body:
//!
//! ```
//! use scimkit::{Error, ErrorResponse};
//!
//! let err = Error::not_found("User 2819c223 not found");
//! let body = serde_json::to_string(&ErrorResponse::from(&err))?;
//! assert_eq!(
//!     body,
//!     r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"User 2819c223 not found"}"#
//! );
//! # Ok::<(), serde_json::Error>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[macro_use]
mod macros;

pub mod error;
pub mod events;
pub mod filter;
pub mod message;
pub mod patch;
pub mod path;
pub mod resource;
pub mod schema;
pub mod service;
pub mod store;

pub use error::{Error, ErrorResponse, Result, ScimType};
pub use message::{ListResponse, OpKind, PatchOp, PatchOperation, SearchRequest, SortOrder};
pub use resource::{
    Address, EnterpriseUser, Extensions, Group, Manager, Meta, MultiValue, Name, Password,
    Resource, ResourceRef, User,
};
pub use schema::{Registry, Schema};
/// The URL type of [`ServiceConfig::with_base_url`](service::ServiceConfig::with_base_url), re-exported.
pub use url::{self, Url};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<crate::Error>();
        assert_send_sync::<crate::Registry>();
        assert_send_sync::<crate::User>();
        assert_send_sync::<crate::Group>();
    }
}
