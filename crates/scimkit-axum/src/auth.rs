//! Who is calling: the [`Authenticate`] trait the router asks before anything else,
//! and [`ApiKeys`], bearer API keys per tenant kept only as hashes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// A boxed error from a host's key store or authenticator, kept for the logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Who a request comes from, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal<C> {
    /// The request context the service gets (for scimkit's SQL stores, the tenant).
    pub context: C,
    /// The tenant, for logs and metrics.
    pub tenant: String,
    /// What the credential is called (an API key's label), for logs.
    pub label: String,
}

/// Why a request was not let in.
#[derive(Debug)]
pub enum AuthError {
    /// No credential, or one that opens nothing: 401 with `WWW-Authenticate: Bearer`.
    Unauthorized(String),
    /// The credential could not be checked (the key store failed): 500, with the
    /// cause kept for the logs.
    Failed(BoxError),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Unauthorized(detail) => f.write_str(detail),
            AuthError::Failed(e) => write!(f, "the credential could not be checked: {e}"),
        }
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthError::Unauthorized(_) => None,
            AuthError::Failed(e) => Some(e.as_ref()),
        }
    }
}

/// Decides who a request comes from, from its headers. The router calls it before
/// it looks at anything else, so an unauthenticated client learns nothing.
///
/// ```
/// use axum::http::HeaderMap;
/// use scimkit_axum::{AuthError, Authenticate, Principal};
///
/// /// Everyone is the single tenant `()`: for a service behind a trusted proxy.
/// struct Trusted;
///
/// impl Authenticate for Trusted {
///     type Context = ();
///     async fn authenticate(&self, _: &HeaderMap) -> Result<Principal<()>, AuthError> {
///         Ok(Principal { context: (), tenant: String::new(), label: "proxy".into() })
///     }
/// }
/// ```
pub trait Authenticate: Send + Sync + 'static {
    /// The request context the service's store takes.
    type Context: Send + Sync + 'static;

    /// The principal the headers prove, or why not.
    fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Principal<Self::Context>, AuthError>> + Send;
}

/// A key as a [`KeyStore`] keeps it: never the secret, only its [`KeyHash`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's public id (shown in listings, used to revoke it).
    pub id: String,
    /// The tenant whose data the key opens.
    pub tenant: String,
    /// What the operator called it (`okta`, `entra-prod`).
    pub label: String,
}

/// The SHA-256 of a key's secret, in lower-case hex: what is stored and looked up.
/// Keys are 256 random bits, so a fast unsalted hash is the right one (a slow
/// password hash protects guessable secrets; these are not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        KeyHash(hex(&Sha256::digest(secret.as_bytes())))
    }

    /// The hash as stored, 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bytes as lower-case hex.
fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// A freshly made key: its secret, shown to the operator once, and its id and hash,
/// which are what gets stored.
#[derive(Clone)]
pub struct NewKey {
    /// The secret the client sends as `Authorization: Bearer <secret>`.
    pub secret: String,
    /// The public id.
    pub id: String,
    /// The hash to store.
    pub hash: KeyHash,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl NewKey {
    /// A new key from the operating system's random source: `scim_` and 256 bits in
    /// hex (the prefix lets secret scanners find leaked keys), with a 64-bit id.
    ///
    /// # Errors
    /// When the operating system has no randomness to give.
    pub fn generate() -> Result<NewKey, std::io::Error> {
        let mut bytes = [0u8; 40];
        getrandom::getrandom(&mut bytes)
            .map_err(|e| std::io::Error::other(format!("no randomness for a key: {e}")))?;
        let secret = format!("scim_{}", hex(&bytes[..32]));
        Ok(NewKey {
            hash: KeyHash::of(&secret),
            id: hex(&bytes[32..]),
            secret,
        })
    }
}

/// Where [`ApiKeys`] finds keys by hash. Implement it on your database; scimkit's
/// SQL stores have a key table, and [`MemoryKeys`] keeps keys in memory.
pub trait KeyStore: Send + Sync + 'static {
    /// The live (not revoked) key with this hash.
    fn find(
        &self,
        hash: &KeyHash,
    ) -> impl Future<Output = Result<Option<KeyRecord>, BoxError>> + Send;

    /// Records that key `id` was used now. [`ApiKeys`] calls it at most once per
    /// key per [`ApiKeys::touch_every`], not on every request.
    fn touch(&self, id: &str) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Bearer API keys, several live at once, each opening one tenant: the
/// [`Authenticate`] for a multi-tenant SCIM service.
///
/// Every request looks its key up in the [`KeyStore`], so a key revoked there (by
/// another process, on another instance) is refused from the next request on. The
/// request context is the key's tenant.
///
/// ```
/// use axum::http::{HeaderMap, HeaderValue};
/// use scimkit_axum::{ApiKeys, Authenticate, MemoryKeys};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryKeys::new();
/// let key = store.create("acme", "okta").unwrap();
/// let keys = ApiKeys::new(store.clone());
///
/// let mut headers = HeaderMap::new();
/// let bearer = format!("Bearer {}", key.secret);
/// headers.insert("authorization", HeaderValue::from_str(&bearer).unwrap());
/// let who = keys.authenticate(&headers).await.unwrap();
/// assert_eq!((who.context.as_str(), who.label.as_str()), ("acme", "okta"));
///
/// store.revoke(&key.id);
/// assert!(keys.authenticate(&headers).await.is_err());
/// # });
/// ```
pub struct ApiKeys<K> {
    store: K,
    touch_every: Duration,
    touched: Mutex<HashMap<String, Instant>>,
}

impl<K: fmt::Debug> fmt::Debug for ApiKeys<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("store", &self.store)
            .field("touch_every", &self.touch_every)
            .finish_non_exhaustive()
    }
}

impl<K: KeyStore> ApiKeys<K> {
    /// Keys from `store`; last use recorded at most once a minute per key.
    pub fn new(store: K) -> Self {
        ApiKeys {
            store,
            touch_every: Duration::from_secs(60),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// How often a key's last use is written to the store (at most).
    #[must_use]
    pub fn touch_every(mut self, every: Duration) -> Self {
        self.touch_every = every;
        self
    }

    /// The key store.
    pub fn store(&self) -> &K {
        &self.store
    }

    /// Whether key `id`'s last use is due to be written, noting that it will be.
    fn due(&self, id: &str) -> bool {
        let Ok(mut touched) = self.touched.lock() else {
            return true;
        };
        let now = Instant::now();
        match touched.get(id) {
            Some(at) if now.duration_since(*at) < self.touch_every => false,
            _ => {
                if touched.len() > 10_000 {
                    touched.clear();
                }
                touched.insert(id.to_owned(), now);
                true
            }
        }
    }
}

/// The bearer token of an `Authorization` header (RFC 6750 §2.1), if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then_some(token)
}

impl<K: KeyStore> Authenticate for ApiKeys<K> {
    type Context = String;

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal<String>, AuthError> {
        let Some(secret) = bearer_token(headers) else {
            return Err(AuthError::Unauthorized(
                "a bearer token is required: Authorization: Bearer <key>".to_owned(),
            ));
        };
        // The secret is looked up by its hash: comparing hashes in the database
        // reveals nothing about the secret through timing.
        let hash = KeyHash::of(secret);
        match self.store.find(&hash).await.map_err(AuthError::Failed)? {
            Some(key) => {
                if self.due(&key.id) {
                    if let Err(e) = self.store.touch(&key.id).await {
                        tracing::warn!(key = %key.id, error = %e, "could not record a key's last use");
                    }
                }
                Ok(Principal {
                    context: key.tenant.clone(),
                    tenant: key.tenant,
                    label: key.label,
                })
            }
            None => Err(AuthError::Unauthorized(
                "the bearer token is not a valid API key (unknown or revoked)".to_owned(),
            )),
        }
    }
}

/// One key as [`MemoryKeys`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryKey {
    /// The key.
    pub record: KeyRecord,
    /// When it was last used, if ever.
    pub last_used: Option<chrono::DateTime<chrono::Utc>>,
}

/// Keys in memory, for tests and single-process hosts. Cloning shares the keys.
#[derive(Debug, Clone, Default)]
pub struct MemoryKeys {
    keys: Arc<RwLock<HashMap<KeyHash, MemoryKey>>>,
}

impl MemoryKeys {
    /// No keys.
    pub fn new() -> Self {
        MemoryKeys::default()
    }

    /// Makes a key for `tenant`, labelled `label`; the secret is in the answer only.
    ///
    /// # Errors
    /// When the operating system has no randomness to give.
    pub fn create(&self, tenant: &str, label: &str) -> Result<NewKey, std::io::Error> {
        let key = NewKey::generate()?;
        let record = KeyRecord {
            id: key.id.clone(),
            tenant: tenant.to_owned(),
            label: label.to_owned(),
        };
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(
                key.hash.clone(),
                MemoryKey {
                    record,
                    last_used: None,
                },
            );
        }
        Ok(key)
    }

    /// Revokes key `id`; returns whether there was one.
    pub fn revoke(&self, id: &str) -> bool {
        let Ok(mut keys) = self.keys.write() else {
            return false;
        };
        let before = keys.len();
        keys.retain(|_, k| k.record.id != id);
        keys.len() != before
    }

    /// The live keys.
    pub fn list(&self) -> Vec<MemoryKey> {
        self.keys
            .read()
            .map(|keys| keys.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl KeyStore for MemoryKeys {
    async fn find(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, BoxError> {
        let keys = self.keys.read().map_err(|_| "the key map is poisoned")?;
        Ok(keys.get(hash).map(|k| k.record.clone()))
    }

    async fn touch(&self, id: &str) -> Result<(), BoxError> {
        let mut keys = self.keys.write().map_err(|_| "the key map is poisoned")?;
        if let Some(k) = keys.values_mut().find(|k| k.record.id == id) {
            k.last_used = Some(chrono::Utc::now());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            KeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_differ_and_hash_to_what_is_stored() {
        let a = NewKey::generate().unwrap();
        let b = NewKey::generate().unwrap();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert!(a.secret.starts_with("scim_") && a.secret.len() == 69);
        assert_eq!(KeyHash::of(&a.secret), a.hash);
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn bearer_tokens_are_read_as_rfc_6750_says() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}
