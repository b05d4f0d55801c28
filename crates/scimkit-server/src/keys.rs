//! API keys in the server's database: the [`KeyStore`] the router checks, the key
//! the first start creates, and the `keys` subcommands.

use scimkit_axum::{BoxError, KeyHash, KeyRecord, KeyStore, NewKey};
use scimkit_sql::store::{KeyTable, SqlStore, StoredKey};

use crate::{DEFAULT_TENANT, KeysCommand};

/// Keys in the store's `scim_api_keys` table.
#[derive(Debug, Clone)]
pub struct SqlKeys {
    table: KeyTable,
}

impl SqlKeys {
    /// Keys in `table`.
    pub fn new(table: KeyTable) -> Self {
        SqlKeys { table }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl KeyStore for SqlKeys {
    async fn find(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, BoxError> {
        Ok(self.table.find(hash.as_str()).await?.map(|k| KeyRecord {
            id: k.id,
            tenant: k.tenant,
            label: k.label,
        }))
    }

    async fn touch(&self, id: &str) -> Result<(), BoxError> {
        Ok(self.table.touch(id, &now()).await?)
    }
}

/// A database URL fit for logs: a PostgreSQL password (in the user part or as a
/// `password` parameter) becomes `***`.
pub fn redact(db: &str) -> String {
    let Ok(mut url) = scimkit::Url::parse(db) else {
        return db.to_owned();
    };
    if !url.has_host() {
        return db.to_owned();
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// On the first start (no key at all, live or revoked), creates a key for the
/// default tenant and prints it once. Instances starting together create one.
pub async fn first_key(store: &SqlStore<String>) -> Result<(), BoxError> {
    let mut key = NewKey::generate()?;
    // One fixed id: instances starting together on one database race for the same
    // primary key, so one of them creates the first key.
    key.id = "first".to_owned();
    let stored = StoredKey::new(
        key.id.clone(),
        DEFAULT_TENANT,
        "initial",
        key.hash.as_str(),
        now(),
    );
    if store.keys().insert_first(&stored).await? {
        println!(
            "created the first API key (id {}, tenant {DEFAULT_TENANT}); it is shown only \
             this once:\n\n    {}\n\nclients send it as: Authorization: Bearer <key>",
            key.id, key.secret
        );
        tracing::info!(key = %key.id, tenant = DEFAULT_TENANT, "created the first API key");
    }
    Ok(())
}

/// Runs a `keys` subcommand.
pub async fn run(db: &str, command: KeysCommand) -> Result<(), BoxError> {
    let store = crate::open(db).await?;
    let table = store.keys();
    let result = match command {
        KeysCommand::Create { tenant, label } => {
            if tenant.trim().is_empty() {
                return Err("--tenant must not be empty".into());
            }
            let key = NewKey::generate()?;
            table
                .insert(&StoredKey::new(
                    key.id.clone(),
                    tenant.trim(),
                    label.trim(),
                    key.hash.as_str(),
                    now(),
                ))
                .await?;
            eprintln!(
                "created key {} for tenant {} ({}); it is shown only this once:",
                key.id,
                tenant.trim(),
                label.trim()
            );
            println!("{}", key.secret);
            Ok(())
        }
        KeysCommand::List => {
            let keys = table.list().await?;
            println!("id\ttenant\tlabel\tcreated\tlast_used\trevoked");
            for k in keys {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.tenant,
                    k.label,
                    k.created,
                    k.last_used.as_deref().unwrap_or("-"),
                    k.revoked.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            if table.revoke(&id, &now()).await? {
                eprintln!("revoked key {id}");
                Ok(())
            } else {
                Err(format!("no live key with id {id}; `keys list` shows them").into())
            }
        }
    };
    store.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_out_of_logs() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/scim"),
            "postgres://app:***@db:5432/scim"
        );
        assert_eq!(redact("postgres://app@db/scim"), "postgres://app@db/scim");
        assert_eq!(redact("scim.db"), "scim.db");
        assert_eq!(redact("/var/lib/scim.db"), "/var/lib/scim.db");
        let weird = redact("postgres://app:p@ss@db/scim");
        assert!(!weird.contains("p@ss") && !weird.contains("ss@"), "{weird}");
        let query = redact("postgres://app@db/scim?sslmode=require&password=s3cret");
        assert!(
            !query.contains("s3cret") && query.contains("sslmode=require"),
            "{query}"
        );
    }
}
