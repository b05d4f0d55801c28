//! SCIM inside an existing axum application: the host's own routes stay as they
//! are, and the SCIM API is nested at `/scim/v2` behind API keys per tenant.
//!
//! ```text
//! cargo run -p scimkit-axum --example embed_axum
//! curl -H "Authorization: Bearer <printed key>" http://127.0.0.1:3000/scim/v2/Users
//! ```

use axum::Router;
use axum::routing::get;
use scimkit::Url;
use scimkit::service::{PatchResponse, Service, ServiceConfig};
use scimkit::store::MemoryStore;
use scimkit_axum::{ApiKeys, MemoryKeys, ServeOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One key per identity provider; the key's tenant is the store's context.
    let keys = MemoryKeys::new();
    let okta = keys.create("acme", "okta")?;
    println!("Okta's key for tenant acme: {}", okta.secret);

    let config = ServiceConfig::with_base_url(Url::parse("http://127.0.0.1:3000/scim/v2")?)
        .max_results(100)
        .patch_response(PatchResponse::NoContentForMemberChanges);
    let service = Service::new(MemoryStore::<String>::new(), config);

    let app = Router::new()
        .route("/", get(|| async { "the host's own page" }))
        .nest(
            "/scim/v2",
            scimkit_axum::router(service, ApiKeys::new(keys)),
        );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000/scim/v2");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    scimkit_axum::serve(listener, app, ServeOptions::default(), ctrl_c).await?;
    Ok(())
}
