//! Typed resources: [`User`], [`EnterpriseUser`], [`Group`] and their parts (RFC 7643 §3–4).
//!
//! Each struct reads and writes the RFC's JSON with serde and keeps whatever it does
//! not model in an [`Extensions`] map, so a document survives a round trip unchanged.
//! The protocol layers work on JSON guided by the schema; these types are for the
//! edges, where a host wants fields rather than JSON.

mod enterprise;
mod extensions;
mod group;
mod meta;
mod user;

pub use enterprise::{EnterpriseUser, Manager};
pub use extensions::Extensions;
pub use group::{Group, ResourceRef};
pub use meta::Meta;
pub use user::{Address, MultiValue, Name, Password, User};

/// A typed resource that a [`Registry`](crate::schema::Registry) can decode from,
/// and encode to, a resource type's JSON.
pub trait Resource: serde::Serialize + serde::de::DeserializeOwned {
    /// The name of the resource type, e.g. `User`.
    const RESOURCE_TYPE: &'static str;
}

impl Resource for User {
    const RESOURCE_TYPE: &'static str = "User";
}

impl Resource for Group {
    const RESOURCE_TYPE: &'static str = "Group";
}
