//! Tenants, their API keys and their quotas: who may call, what they may use, how much.
//!
//! A deployment with at least one `[[tenants]]` table requires a key on every
//! `callscribe.v1.Transcription` RPC (health stays open). Keys are long random tokens made by
//! [`new_key`]; the configuration holds only their SHA-256 hashes, and a presented key is
//! hashed and compared with every configured hash in constant time ([`subtle`]), so neither
//! the configuration nor the timing of a refusal tells anything about a key. A fast hash is
//! right here: a 256-bit random key cannot be guessed, so nothing is gained by slowing each
//! check down as one must for passwords.
//!
//! Everything is decided at the gRPC edge, in this module: [`interceptor`] authenticates
//! every request before the service sees it (UNAUTHENTICATED before any audio is read) and
//! attaches a [`Caller`], a plain Rust value that the call carries from then on;
//! [`Tenant::authorise`] checks a call's plan against the tenant's allow-lists
//! (PERMISSION_DENIED) and [`Quotas::admit`] its concurrent calls and call rate
//! (RESOURCE_EXHAUSTED naming the quota). Quota state is kept per tenant id, apart from the
//! configuration, so a reload (SIGHUP) changes limits and revokes keys without forgetting the
//! calls in flight.

use super::tls::ClientIdentity;
use crate::plan::{CallPlan, Language};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tonic::{Code, Status};

/// Every key starts with this, so a leaked key is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "cs_";
/// Random bytes in a key: 256 bits, beyond guessing, which is what lets a plain SHA-256 hash
/// store it safely.
const KEY_BYTES: usize = 32;
/// The window of `new_calls_per_minute`.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One `[[tenants]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Names the tenant in logs, metrics and forwarded segments.
    pub id: String,
    /// Hex SHA-256 of each key the tenant may use (`callscribe keys new` prints one). Remove
    /// a hash and reload to revoke its key.
    pub key_hashes: Vec<String>,
    /// Calls (streams and Transcribe requests) the tenant may have open at once.
    pub max_concurrent_calls: usize,
    /// Calls the tenant may start in any 60 s; none = no limit.
    #[serde(default)]
    pub new_calls_per_minute: Option<u32>,
    /// Models the tenant may use; none = any loaded model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Dialect adapters the tenant may use; none = any.
    #[serde(default)]
    pub dialects: Option<Vec<String>>,
    /// Under mutual TLS: the tenant's keys are accepted only on connections whose client
    /// certificate names one of these (its CN or a SAN); none = any certificate.
    #[serde(default)]
    pub client_names: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantConfigError {
    #[error("tenants[{index}].id {id:?}: use 1 to 64 letters, digits, '.', '_' or '-' (it names the tenant in logs, metrics and forwarded segments)")]
    BadId { index: usize, id: String },
    #[error("tenants[{index}].id '{id}' is used twice")]
    DuplicateId { index: usize, id: String },
    #[error(
        "tenant '{id}': key_hashes is empty (a tenant without keys cannot call; remove it instead)"
    )]
    NoKeys { id: String },
    #[error("tenant '{id}': key_hashes[{index}] is not 64 hex digits (the SHA-256 `callscribe keys new` prints){hint}")]
    BadHash {
        id: String,
        index: usize,
        hint: &'static str,
    },
    #[error("tenant '{id}': key_hashes[{index}] is also a key of tenant '{other}'")]
    SharedKey {
        id: String,
        index: usize,
        other: String,
    },
    #[error("tenant '{id}': {field} must be at least 1")]
    Zero { id: String, field: &'static str },
}

/// Why a request is refused. Each maps to one gRPC code ([`AuthError::code`]).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no API key: send `authorization: Bearer <key>` or `x-api-key: <key>` metadata")]
    MissingKey,
    #[error("the `authorization` metadata is not `Bearer <key>`")]
    Malformed,
    #[error("the API key is not valid (unknown or revoked)")]
    UnknownKey,
    #[error("tenant '{tenant}': its keys are accepted only with a client certificate naming one of: {allowed}")]
    ClientNotAllowed { tenant: String, allowed: String },
    #[error("tenant '{tenant}' may not use model '{model}' (allowed: {allowed})")]
    Model {
        tenant: String,
        model: String,
        allowed: String,
    },
    #[error("tenant '{tenant}' may not use dialect adapter '{adapter}' (allowed: {allowed})")]
    Adapter {
        tenant: String,
        adapter: String,
        allowed: String,
    },
    #[error("tenant '{tenant}' may not use dialect adapter '{adapter}', which language identification can select (allowed: {allowed}); name an allowed dialect or language")]
    Identification {
        tenant: String,
        adapter: String,
        allowed: String,
    },
    #[error("tenant '{tenant}' is at its quota of {limit} concurrent calls (tenants.max_concurrent_calls); retry when one of its calls ends")]
    Concurrent { tenant: String, limit: usize },
    #[error("tenant '{tenant}' is at its quota of {limit} new calls per minute (tenants.new_calls_per_minute); retry in {retry_secs} s")]
    Rate {
        tenant: String,
        limit: u32,
        retry_secs: u64,
    },
}

impl AuthError {
    pub fn code(&self) -> Code {
        match self {
            AuthError::MissingKey | AuthError::Malformed | AuthError::UnknownKey => {
                Code::Unauthenticated
            }
            AuthError::ClientNotAllowed { .. }
            | AuthError::Model { .. }
            | AuthError::Adapter { .. }
            | AuthError::Identification { .. } => Code::PermissionDenied,
            AuthError::Concurrent { .. } | AuthError::Rate { .. } => Code::ResourceExhausted,
        }
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

/// A tenant as the server checks it.
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    key_hashes: Vec<[u8; 32]>,
    pub max_concurrent_calls: usize,
    pub new_calls_per_minute: Option<u32>,
    models: Option<Vec<String>>,
    dialects: Option<Vec<String>>,
    client_names: Option<Vec<String>>,
}

impl Tenant {
    /// PERMISSION_DENIED unless the plan's model and adapter are on the tenant's lists. A
    /// plan that will identify its language may end with any adapter identification maps to
    /// (or the default), so each of those must be allowed too.
    pub fn authorise(&self, plan: &CallPlan) -> Result<(), AuthError> {
        if let Some(models) = &self.models {
            if !models.contains(&plan.model.name) {
                return Err(AuthError::Model {
                    tenant: self.id.clone(),
                    model: plan.model.name.clone(),
                    allowed: models.join(", "),
                });
            }
        }
        let Some(allowed) = &self.dialects else {
            return Ok(());
        };
        let ok = |id: &str| allowed.iter().any(|a| a == id);
        if let Some(sel) = &plan.selection {
            if !ok(sel.adapter.id()) {
                return Err(AuthError::Adapter {
                    tenant: self.id.clone(),
                    adapter: sel.adapter.id().to_owned(),
                    allowed: allowed.join(", "),
                });
            }
        } else if let (Language::Identify, Some(d)) = (&plan.language, &plan.dialects) {
            let reachable = d
                .config()
                .detect_map
                .values()
                .chain(std::iter::once(&d.config().default));
            for id in reachable {
                if !ok(id) {
                    return Err(AuthError::Identification {
                        tenant: self.id.clone(),
                        adapter: id.clone(),
                        allowed: allowed.join(", "),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the tenant may use `model` (ListModels shows a tenant only these).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }

    /// Whether the tenant may use adapter `id` (ListDialects shows a tenant only these).
    pub fn allows_adapter(&self, id: &str) -> bool {
        self.dialects
            .as_ref()
            .is_none_or(|d| d.iter().any(|x| x == id))
    }
}

/// The configured tenants; swapped whole on reload.
#[derive(Debug, Default)]
pub struct Tenants {
    tenants: Vec<Arc<Tenant>>,
    /// Keys are required even with no tenant left: see [`Tenants::keep_closed`].
    closed: bool,
}

impl Tenants {
    /// Checks every table: ids present and unique, hashes well-formed and not shared.
    pub fn new(configs: &[TenantConfig]) -> Result<Self, TenantConfigError> {
        let mut tenants: Vec<Arc<Tenant>> = Vec::with_capacity(configs.len());
        for (index, c) in configs.iter().enumerate() {
            let id = c.id.clone();
            if !valid_id(&id) {
                return Err(TenantConfigError::BadId { index, id });
            }
            if tenants.iter().any(|t| t.id == id) {
                return Err(TenantConfigError::DuplicateId { index, id });
            }
            if c.key_hashes.is_empty() {
                return Err(TenantConfigError::NoKeys { id });
            }
            if c.max_concurrent_calls == 0 {
                return Err(TenantConfigError::Zero {
                    id,
                    field: "max_concurrent_calls",
                });
            }
            if c.new_calls_per_minute == Some(0) {
                return Err(TenantConfigError::Zero {
                    id,
                    field: "new_calls_per_minute",
                });
            }
            let mut key_hashes = Vec::with_capacity(c.key_hashes.len());
            for (i, h) in c.key_hashes.iter().enumerate() {
                let hash = parse_hash(h).ok_or_else(|| TenantConfigError::BadHash {
                    id: id.clone(),
                    index: i,
                    hint: if h.starts_with(KEY_PREFIX) {
                        ": this looks like a key itself; configure its hash, never the key"
                    } else {
                        ""
                    },
                })?;
                if let Some(other) = tenants.iter().find(|t| t.key_hashes.contains(&hash)) {
                    return Err(TenantConfigError::SharedKey {
                        id: id.clone(),
                        index: i,
                        other: other.id.clone(),
                    });
                }
                key_hashes.push(hash);
            }
            tenants.push(Arc::new(Tenant {
                id,
                key_hashes,
                max_concurrent_calls: c.max_concurrent_calls,
                new_calls_per_minute: c.new_calls_per_minute,
                models: c.models.clone(),
                dialects: c.dialects.clone(),
                client_names: c.client_names.clone(),
            }));
        }
        Ok(Self {
            tenants,
            closed: false,
        })
    }

    /// These tenants replacing `running` on a live server. A server that required keys
    /// keeps requiring them when a reload removes its last tenant: an operator revoking the
    /// last key means "nobody", never "anybody". Only a restart turns keys off.
    pub fn keep_closed(mut self, running: &Tenants) -> Self {
        self.closed = running.enabled();
        self
    }

    /// Whether keys are required (at least one tenant is configured, or was).
    pub fn enabled(&self) -> bool {
        self.closed || !self.tenants.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.tenants.iter().map(|t| t.id.as_str())
    }

    /// The tenant whose key `key` is. Every configured hash is compared, in constant time,
    /// whatever matches: the time taken says nothing about which bytes were right.
    pub fn by_key(&self, key: &str) -> Option<Arc<Tenant>> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found: Option<&Arc<Tenant>> = None;
        for t in &self.tenants {
            for h in &t.key_hashes {
                if bool::from(h.ct_eq(&presented)) {
                    found = Some(t);
                }
            }
        }
        found.cloned()
    }

    /// Authenticates a request's metadata: `Ok(None)` with no tenants configured (keys are
    /// not required), else the key's tenant, whose certificate binding (`client_names`) the
    /// connection's `identity` must satisfy.
    pub fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        identity: Option<&ClientIdentity>,
    ) -> Result<Option<Arc<Tenant>>, AuthError> {
        if !self.enabled() {
            return Ok(None);
        }
        let key = presented_key(metadata)?;
        let tenant = self.by_key(key).ok_or(AuthError::UnknownKey)?;
        if let Some(names) = &tenant.client_names {
            if !identity.is_some_and(|id| names.iter().any(|n| id.names(n))) {
                return Err(AuthError::ClientNotAllowed {
                    tenant: tenant.id.clone(),
                    allowed: names.join(", "),
                });
            }
        }
        Ok(Some(tenant))
    }
}

/// The key a request carries: `authorization: Bearer <key>` (what Google-style clients send),
/// else `x-api-key: <key>` (Riva-style). An `authorization` of another scheme (a gateway's
/// Basic credentials) does not hide an `x-api-key`; alone, it is malformed.
fn presented_key(metadata: &tonic::metadata::MetadataMap) -> Result<&str, AuthError> {
    let bearer = metadata.get("authorization").map(|v| {
        let v = v.to_str().map_err(|_| AuthError::Malformed)?.trim();
        match v.split_once(' ') {
            Some((scheme, key))
                if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() =>
            {
                Ok(key.trim())
            }
            _ => Err(AuthError::Malformed),
        }
    });
    if let Some(Ok(key)) = bearer {
        return Ok(key);
    }
    match metadata.get("x-api-key").map(|v| v.to_str()) {
        Some(Ok(k)) if !k.trim().is_empty() => Ok(k.trim()),
        Some(_) => Err(AuthError::Malformed),
        None => match bearer {
            Some(Err(e)) => Err(e),
            _ => Err(AuthError::MissingKey),
        },
    }
}

/// A tenant id fit for a log line, a metric label and a TOML string without escaping.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *o = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// The hex SHA-256 of a key: what the configuration stores.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// A new key: [`KEY_PREFIX`] and 32 bytes from the operating system's CSPRNG, base64url
/// without padding (47 characters, safe in headers, URLs and shells).
pub fn new_key() -> Result<String, RandomError> {
    use base64::Engine;
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Who is calling, as the gRPC edge established it; travels with the call.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// None when no tenants are configured.
    pub tenant: Option<Arc<Tenant>>,
    pub peer: Option<SocketAddr>,
    /// The verified client certificate's names (mutual TLS).
    pub identity: Option<ClientIdentity>,
}

impl Caller {
    /// The tenant id for logs, metrics and forwarded segments; empty without tenants.
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_ref().map_or("", |t| t.id.as_str())
    }

    /// PERMISSION_DENIED unless the caller's tenant may use the plan (always allowed
    /// without tenants).
    pub fn authorise(&self, plan: &CallPlan) -> Result<(), AuthError> {
        self.tenant.as_ref().map_or(Ok(()), |t| t.authorise(plan))
    }
}

/// The gRPC edge: authenticates each request against the tenants of the moment and attaches
/// its [`Caller`]; a refusal is audited here, since no call follows it.
pub(super) fn interceptor(
    shared: Arc<super::Shared>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, Status> + Clone {
    move |mut req: tonic::Request<()>| {
        let identity = req
            .peer_certs()
            .and_then(|certs| certs.first().and_then(|c| ClientIdentity::of(c)));
        let peer = req.remote_addr();
        match shared
            .tenants()
            .authenticate(req.metadata(), identity.as_ref())
        {
            Ok(tenant) => {
                req.extensions_mut().insert(Caller {
                    tenant,
                    peer,
                    identity,
                });
                Ok(req)
            }
            Err(e) => {
                let status = Status::from(e);
                let caller = Caller {
                    tenant: None,
                    peer,
                    identity,
                };
                super::audit::refused(&caller, &status);
                shared.metrics.error(&status);
                Err(status)
            }
        }
    }
}

/// Per-tenant usage, kept across reloads by tenant id.
#[derive(Debug, Default)]
pub struct Quotas {
    usage: Mutex<HashMap<String, Usage>>,
}

#[derive(Debug, Default)]
struct Usage {
    active: usize,
    /// When each of the last `new_calls_per_minute` calls started: at most that many.
    started: VecDeque<Instant>,
}

/// One admitted call's share of its tenant's quota; returned when dropped.
#[derive(Debug)]
pub struct TenantSlot {
    quotas: Arc<Quotas>,
    tenant: String,
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut usage = self.quotas.lock();
        if let Some(u) = usage.get_mut(&self.tenant) {
            u.active = u.active.saturating_sub(1);
        }
    }
}

impl TenantSlot {
    /// Takes back the call's start from the rate window: the server refused the call after
    /// the tenant's quota admitted it, so it never started.
    pub fn never_started(self) {
        if let Some(u) = self.quotas.lock().get_mut(&self.tenant) {
            u.started.pop_back();
        }
    }
}

impl Quotas {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Usage>> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more call of `tenant`, or RESOURCE_EXHAUSTED naming the quota it is
    /// at. Other tenants' usage is never consulted.
    pub fn admit(self: &Arc<Self>, tenant: &Tenant, now: Instant) -> Result<TenantSlot, AuthError> {
        let mut usage = self.lock();
        let u = usage.entry(tenant.id.clone()).or_default();
        if u.active >= tenant.max_concurrent_calls {
            return Err(AuthError::Concurrent {
                tenant: tenant.id.clone(),
                limit: tenant.max_concurrent_calls,
            });
        }
        if let Some(limit) = tenant.new_calls_per_minute {
            while u
                .started
                .front()
                .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
            {
                u.started.pop_front();
            }
            if u.started.len() >= limit as usize {
                let oldest = *u.started.front().expect("limit ≥ 1 and the window is full");
                let wait = RATE_WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(AuthError::Rate {
                    tenant: tenant.id.clone(),
                    limit,
                    retry_secs: wait.as_secs() + 1,
                });
            }
            u.started.push_back(now);
            // A lowered limit after a reload: forget what no longer counts.
            while u.started.len() > limit as usize {
                u.started.pop_front();
            }
        }
        u.active += 1;
        Ok(TenantSlot {
            quotas: self.clone(),
            tenant: tenant.id.clone(),
        })
    }

    /// Calls `tenant` has open now.
    pub fn active(&self, tenant: &str) -> usize {
        self.lock().get(tenant).map_or(0, |u| u.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn tenant(id: &str, key: &str) -> TenantConfig {
        TenantConfig {
            id: id.into(),
            key_hashes: vec![key_hash(key)],
            max_concurrent_calls: 2,
            new_calls_per_minute: None,
            models: None,
            dialects: None,
            client_names: None,
        }
    }

    fn metadata(name: &'static str, value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert(name, value.parse().unwrap());
        m
    }

    #[test]
    fn a_new_key_is_prefixed_random_and_its_hash_is_what_authenticates_it() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert!(
            a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43,
            "{a}"
        );
        assert_ne!(a, b);
        let tenants = Tenants::new(&[tenant("acme", &a)]).unwrap();
        assert_eq!(tenants.by_key(&a).unwrap().id, "acme");
        assert!(tenants.by_key(&b).is_none());
        assert_eq!(key_hash("abc").len(), 64);
        // The known SHA-256 of "abc".
        assert!(key_hash("abc").starts_with("ba7816bf8f01cfea"));
    }

    #[test]
    fn keys_arrive_as_bearer_or_x_api_key_and_anything_else_is_unauthenticated() {
        let tenants = Tenants::new(&[tenant("acme", "k1"), tenant("globex", "k2")]).unwrap();
        let who = |m: &MetadataMap| tenants.authenticate(m, None).map(|t| t.unwrap().id.clone());
        assert_eq!(
            who(&metadata("authorization", "Bearer k1")).unwrap(),
            "acme"
        );
        assert_eq!(
            who(&metadata("authorization", "bearer  k2 ")).unwrap(),
            "globex"
        );
        assert_eq!(who(&metadata("x-api-key", "k2")).unwrap(), "globex");
        assert_eq!(who(&MetadataMap::new()).unwrap_err(), AuthError::MissingKey);
        assert_eq!(
            who(&metadata("authorization", "Basic k1")).unwrap_err(),
            AuthError::Malformed
        );
        // A gateway's Basic credentials beside the key do not hide it.
        let mut both = metadata("authorization", "Basic dXNlcjpwdw==");
        both.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(who(&both).unwrap(), "acme");
        let e = who(&metadata("x-api-key", "k3")).unwrap_err();
        assert_eq!(e, AuthError::UnknownKey);
        assert_eq!(e.code(), Code::Unauthenticated);
        // Without tenants nothing is required.
        assert!(Tenants::default()
            .authenticate(&MetadataMap::new(), None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_key_bound_to_client_names_needs_a_certificate_naming_one() {
        let mut c = tenant("acme", "k1");
        c.client_names = Some(vec!["pbx.acme.example".into()]);
        let tenants = Tenants::new(&[c]).unwrap();
        let m = metadata("x-api-key", "k1");
        let e = tenants.authenticate(&m, None).unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        let other = ClientIdentity {
            common_name: Some("pbx.globex.example".into()),
            alt_names: vec![],
        };
        assert!(tenants.authenticate(&m, Some(&other)).is_err());
        let ours = ClientIdentity {
            common_name: Some("gw".into()),
            alt_names: vec!["dns:pbx.acme.example".into()],
        };
        assert_eq!(
            tenants.authenticate(&m, Some(&ours)).unwrap().unwrap().id,
            "acme"
        );
    }

    #[test]
    fn bad_tenant_tables_are_refused_with_the_field_named() {
        let mut plain = tenant("acme", "k");
        plain.key_hashes = vec!["cs_notahash".into()];
        let e = Tenants::new(&[plain]).unwrap_err().to_string();
        assert!(
            e.contains("key_hashes[0]") && e.contains("never the key"),
            "{e}"
        );
        let e = Tenants::new(&[tenant("a", "k"), tenant("a", "j")]).unwrap_err();
        assert!(matches!(e, TenantConfigError::DuplicateId { .. }), "{e}");
        let e = Tenants::new(&[tenant("a", "k"), tenant("b", "k")]).unwrap_err();
        assert!(matches!(e, TenantConfigError::SharedKey { .. }), "{e}");
        let mut zero = tenant("a", "k");
        zero.max_concurrent_calls = 0;
        assert!(Tenants::new(&[zero]).is_err());
        let e = Tenants::new(&[tenant("acme corp", "k")]).unwrap_err();
        assert!(matches!(e, TenantConfigError::BadId { .. }), "{e}");
    }

    #[test]
    fn removing_the_last_tenant_on_reload_revokes_every_key_instead_of_opening_the_server() {
        let running = Tenants::new(&[tenant("acme", "k1")]).unwrap();
        let reloaded = Tenants::new(&[]).unwrap().keep_closed(&running);
        let e = reloaded
            .authenticate(&metadata("x-api-key", "k1"), None)
            .unwrap_err();
        assert_eq!(e, AuthError::UnknownKey);
        // A server started without tenants stays open.
        let open = Tenants::new(&[]).unwrap().keep_closed(&Tenants::default());
        assert!(open
            .authenticate(&MetadataMap::new(), None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn quotas_are_per_tenant_and_slots_come_back_when_calls_end() {
        let tenants = Tenants::new(&[tenant("acme", "k1"), tenant("globex", "k2")]).unwrap();
        let (acme, globex) = (tenants.by_key("k1").unwrap(), tenants.by_key("k2").unwrap());
        let quotas = Arc::new(Quotas::default());
        let now = Instant::now();
        let a1 = quotas.admit(&acme, now).unwrap();
        let _a2 = quotas.admit(&acme, now).unwrap();
        let e = quotas.admit(&acme, now).unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert!(e.to_string().contains("max_concurrent_calls"), "{e}");
        // The other tenant is unaffected.
        let _g = quotas.admit(&globex, now).unwrap();
        drop(a1);
        assert_eq!(quotas.active("acme"), 1);
        assert!(quotas.admit(&acme, now).is_ok());
    }

    #[test]
    fn the_call_rate_is_a_sliding_minute_and_a_refused_start_is_given_back() {
        let mut c = tenant("acme", "k1");
        c.max_concurrent_calls = 100;
        c.new_calls_per_minute = Some(2);
        let tenants = Tenants::new(&[c]).unwrap();
        let acme = tenants.by_key("k1").unwrap();
        let quotas = Arc::new(Quotas::default());
        let t0 = Instant::now();
        quotas.admit(&acme, t0).unwrap();
        quotas
            .admit(&acme, t0 + Duration::from_secs(30))
            .unwrap()
            .never_started();
        quotas.admit(&acme, t0 + Duration::from_secs(30)).unwrap();
        let e = quotas
            .admit(&acme, t0 + Duration::from_secs(40))
            .unwrap_err();
        assert_eq!(
            e,
            AuthError::Rate {
                tenant: "acme".into(),
                limit: 2,
                retry_secs: 21
            }
        );
        assert!(e.to_string().contains("new_calls_per_minute"), "{e}");
        // A minute after the first start, one more fits.
        assert!(quotas.admit(&acme, t0 + Duration::from_secs(60)).is_ok());
    }
}
