//! SCIM inside an existing axum application: the host's own routes stay as they
//! are, the SCIM API is nested at `/scim/v2`, and the host's own authentication
//! decides who calls and which tenant's data they see. (For keys stored as hashes,
//! revocable and per tenant, use `scimkit_axum::ApiKeys` instead.)
//!
//! ```text
//! SCIM_TOKEN=change-me cargo run -p scimkit-axum --example embed_axum
//! curl -H "Authorization: Bearer change-me" http://127.0.0.1:3000/scim/v2/Users
//! ```

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use scimkit::Url;
use scimkit::service::{PatchResponse, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use scimkit_axum::{AuthError, Authenticate, Principal, ServeOptions, bearer_token};

/// The host's own rule: one provisioning token, for the tenant `acme`.
struct HostAuth {
    token: String,
}

impl Authenticate for HostAuth {
    type Context = String;

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal<String>, AuthError> {
        match bearer_token(headers) {
            Some(t) if t == self.token => Ok(Principal {
                context: "acme".into(),
                tenant: "acme".into(),
                label: "provisioning".into(),
            }),
            _ => Err(AuthError::Unauthorized(
                "a valid bearer token is required".into(),
            )),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("SCIM_TOKEN").map_err(|_| "set SCIM_TOKEN")?;
    let config = ServiceConfig::with_base_url(Url::parse("http://127.0.0.1:3000/scim/v2")?)
        .patch_response(PatchResponse::NoContentForMemberChanges);
    let service = Service::new(MemoryStore::<String>::new(), config);

    let app = Router::new()
        .route("/", get(|| async { "the host's own page" }))
        .nest(
            "/scim/v2",
            scimkit_axum::router(service, HostAuth { token }),
        );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000/scim/v2");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    scimkit_axum::serve(listener, app, ServeOptions::default(), ctrl_c).await?;
    Ok(())
}
