//! API keys in the store's database: only their hashes, each with its tenant and a
//! label, revocable, with the time of last use. Hashing and checking a presented
//! key is the HTTP layer's job; this table only keeps what it needs, so that every
//! instance on one database (and the command that revokes a key) sees the same keys.

use scimkit::store::StoreError;
use sqlx::Row;

use super::{Pool, SqlStore, backend};

/// One stored key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredKey {
    /// The key's public id, shown in listings and used to revoke it.
    pub id: String,
    /// The tenant whose data the key opens.
    pub tenant: String,
    /// What the operator called it (`okta`, `entra-prod`).
    pub label: String,
    /// The key's hash, as the HTTP layer computed it.
    pub hash: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it was last used (RFC 3339), at the granularity the HTTP layer records.
    pub last_used: Option<String>,
    /// When it was revoked (RFC 3339); a revoked key opens nothing.
    pub revoked: Option<String>,
}

impl StoredKey {
    /// A new, live key.
    pub fn new(
        id: impl Into<String>,
        tenant: impl Into<String>,
        label: impl Into<String>,
        hash: impl Into<String>,
        created: impl Into<String>,
    ) -> Self {
        StoredKey {
            id: id.into(),
            tenant: tenant.into(),
            label: label.into(),
            hash: hash.into(),
            created: created.into(),
            last_used: None,
            revoked: None,
        }
    }
}

/// The `scim_api_keys` table of a [`SqlStore`]'s database.
#[derive(Debug, Clone)]
pub struct KeyTable {
    pool: Pool,
}

const COLUMNS: &str = "id, tenant, label, hash, created, last_used, revoked";

fn stored_key<R: Row>(row: &R) -> Result<StoredKey, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
{
    Ok(StoredKey {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        label: row.try_get("label")?,
        hash: row.try_get("hash")?,
        created: row.try_get("created")?,
        last_used: row.try_get("last_used")?,
        revoked: row.try_get("revoked")?,
    })
}

impl<C> SqlStore<C> {
    /// The API key table in this store's database.
    pub fn keys(&self) -> KeyTable {
        KeyTable {
            pool: self.pool.clone(),
        }
    }
}

impl KeyTable {
    /// Stores a key.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when its id or hash is taken; [`StoreError::Backend`]
    /// when the database fails.
    pub async fn insert(&self, key: &StoredKey) -> Result<(), StoreError> {
        self.insert_where(key, " WHERE true").await.and_then(|n| {
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict(format!("key {} exists", key.id)))
            }
        })
    }

    /// Stores `key` only if the table holds no key at all, live or revoked: the
    /// key a server creates on its first start, never again once any key existed
    /// (two instances starting together create one between them). Returns whether
    /// it was stored.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn insert_first(&self, key: &StoredKey) -> Result<bool, StoreError> {
        self.insert_where(key, " WHERE NOT EXISTS (SELECT 1 FROM scim_api_keys)")
            .await
            .map(|n| n == 1)
    }

    async fn insert_where(&self, key: &StoredKey, condition: &str) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO scim_api_keys ({COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7{condition} \
             ON CONFLICT DO NOTHING"
        );
        on_pool!(&self.pool, p => sqlx::query(&sql)
            .bind(&key.id)
            .bind(&key.tenant)
            .bind(&key.label)
            .bind(&key.hash)
            .bind(&key.created)
            .bind(&key.last_used)
            .bind(&key.revoked)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(backend)
    }

    /// The live (not revoked) key with this hash.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn find(&self, hash: &str) -> Result<Option<StoredKey>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM scim_api_keys WHERE hash = $1 AND revoked IS NULL");
        on_pool!(&self.pool, p => match sqlx::query(&sql).bind(hash).fetch_optional(p).await {
            Ok(Some(row)) => stored_key(&row).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        })
        .map_err(backend)
    }

    /// Records that the key `id` was used at `at` (RFC 3339).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn touch(&self, id: &str, at: &str) -> Result<(), StoreError> {
        let sql = "UPDATE scim_api_keys SET last_used = $1 WHERE id = $2";
        on_pool!(&self.pool, p => sqlx::query(sql).bind(at).bind(id).execute(p).await.map(|_| ()))
            .map_err(backend)
    }

    /// Every key, live and revoked, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM scim_api_keys ORDER BY created, id");
        on_pool!(&self.pool, p => match sqlx::query(&sql).fetch_all(p).await {
            Ok(rows) => rows.iter().map(stored_key).collect(),
            Err(e) => Err(e),
        })
        .map_err(backend)
    }

    /// Revokes the key `id` at `at` (RFC 3339); returns whether a live key was revoked.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn revoke(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE scim_api_keys SET revoked = $1 WHERE id = $2 AND revoked IS NULL";
        on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected() == 1))
        .map_err(backend)
    }
}
