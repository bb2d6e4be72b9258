//! TLS on the gRPC and metrics listeners: certificates from PEM files, optional mutual TLS,
//! and rotation without a restart.
//!
//! tonic's own `ServerTlsConfig` fixes the certificate for the life of the server, so the
//! handshake is done here instead: an accept loop hands each TCP connection to a
//! `tokio_rustls` acceptor built from the *current* rustls `ServerConfig`, and tonic serves
//! the finished TLS streams (`serve_with_incoming`); the metrics endpoint is served the same
//! way through axum, with HTTP/1.1 negotiated instead of HTTP/2. A reload ([`Tls::reload`], on SIGHUP or
//! when [`watch`] sees a file change) builds a whole new `ServerConfig` (certificate, key and
//! client CA together) and swaps it in; connections already open keep the session they
//! negotiated, so calls in flight are not touched, and only new connections see the new
//! certificate. A reload whose files do not parse, or whose key does not match its
//! certificate, changes nothing: the server keeps serving the last good configuration.
//!
//! With `client_ca_path`, client certificates are verified against that bundle (chain,
//! validity period, key usage) by rustls' WebPKI verifier; [`ClientIdentity`] is what a
//! verified certificate says about its holder, for authorisation and the audit log.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// A client that has not finished its handshake after this long is dropped: a slow or idle
/// connection must not hold a handshake slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections are closed at once. Each costs a task
/// and a few kilobytes; the bound keeps a flood of half-open connections from costing more.
const HANDSHAKES_IN_FLIGHT: usize = 256;
/// Finished handshakes waiting for tonic to take them; tonic takes each at once, so this only
/// absorbs bursts.
const ACCEPTED_BACKLOG: usize = 64;

/// `[server.tls]`: serve gRPC over TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain: the server's certificate first, then intermediates.
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key_path: PathBuf,
    /// PEM bundle of the CAs that issue client certificates: enables mutual TLS.
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
    /// With `client_ca_path`: `required` (default; a client without a valid certificate
    /// cannot connect) or `optional` (a certificate, when sent, must be valid).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// How often the files are checked for changes (they are also re-read on SIGHUP);
    /// 0 = only on SIGHUP.
    #[serde(default = "default_watch_interval_ms")]
    pub watch_interval_ms: u64,
    /// Serve `/metrics` (`server.metrics_listen`) over this TLS too, with the same client
    /// certificate policy; false = plaintext metrics (bind them to a loopback or internal
    /// address).
    #[serde(default = "default_metrics")]
    pub metrics: bool,
}

fn default_metrics() -> bool {
    true
}

fn default_watch_interval_ms() -> u64 {
    // Rotation tools (cert-manager, certbot hooks) replace files within seconds; polling is
    // cheap at this size and, unlike inotify, sees Kubernetes' symlink swaps of secrets.
    2000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

impl TlsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.client_auth.is_some() && self.client_ca_path.is_none() {
            return Err(
                "server.tls.client_auth needs server.tls.client_ca_path (the CAs client \
                 certificates are verified against)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> Option<ClientAuth> {
        self.client_ca_path
            .as_ref()
            .map(|_| self.client_auth.unwrap_or_default())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("{cert} with key {key}: {message}")]
    Certificate {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("{path}: client CA bundle: {message}")]
    ClientCa { path: PathBuf, message: String },
}

/// The protocol a listener speaks inside TLS, announced by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// gRPC. grpcio (C core) refuses a server that does not negotiate it.
    H2,
    /// The metrics endpoint (axum, HTTP/1.1 only).
    Http1,
}

/// Whether a reload found anything new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    Unchanged,
    Replaced,
}

struct Current {
    /// SHA-256 over the files' bytes: a reload with the same bytes changes nothing.
    fingerprint: [u8; 32],
    /// The same certificate and client policy, announcing HTTP/2 and HTTP/1.1.
    h2: Arc<rustls::ServerConfig>,
    http1: Arc<rustls::ServerConfig>,
}

impl Current {
    fn new(fingerprint: [u8; 32], config: rustls::ServerConfig) -> Self {
        let with = |alpn: &[u8]| {
            let mut c = config.clone();
            c.alpn_protocols = vec![alpn.to_vec()];
            Arc::new(c)
        };
        Self {
            fingerprint,
            h2: with(b"h2"),
            http1: with(b"http/1.1"),
        }
    }
}

/// The listener's TLS state: the configuration new connections get, swapped on reload.
pub struct Tls {
    cfg: TlsConfig,
    current: RwLock<Current>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cfg", &self.cfg).finish()
    }
}

impl Tls {
    /// Reads and checks the files; an error names the file and what is wrong with it.
    pub fn load(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let (fingerprint, files) = read_files(cfg)?;
        let config = build(cfg, &files)?;
        Ok(Self {
            cfg: cfg.clone(),
            current: RwLock::new(Current::new(fingerprint, config)),
        })
    }

    pub fn config(&self) -> &TlsConfig {
        &self.cfg
    }

    /// Re-reads the files and, if their bytes changed, swaps in the new configuration for
    /// new connections. On error the running configuration stays.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        let (fingerprint, files) = read_files(&self.cfg)?;
        if self.read().fingerprint == fingerprint {
            return Ok(Reloaded::Unchanged);
        }
        let config = build(&self.cfg, &files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Current::new(fingerprint, config);
        Ok(Reloaded::Replaced)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    fn acceptor(&self, alpn: Alpn) -> tokio_rustls::TlsAcceptor {
        let current = self.read();
        tokio_rustls::TlsAcceptor::from(match alpn {
            Alpn::H2 => current.h2.clone(),
            Alpn::Http1 => current.http1.clone(),
        })
    }
}

/// The files' bytes in a fixed order (certificate, key, client CA) and their fingerprint.
fn read_files(cfg: &TlsConfig) -> Result<([u8; 32], Vec<Vec<u8>>), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let mut files = vec![read(&cfg.cert_path)?, read(&cfg.key_path)?];
    if let Some(ca) = &cfg.client_ca_path {
        files.push(read(ca)?);
    }
    let mut h = Sha256::new();
    for f in &files {
        // Length first, so moving bytes between files changes the fingerprint.
        h.update((f.len() as u64).to_le_bytes());
        h.update(f);
    }
    Ok((h.finalize().into(), files))
}

fn build(cfg: &TlsConfig, files: &[Vec<u8>]) -> Result<rustls::ServerConfig, TlsError> {
    let pem = |path: &Path, message: String| TlsError::Pem {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&files[0])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(&cfg.cert_path, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem(
            &cfg.cert_path,
            "no certificate found (expected PEM `BEGIN CERTIFICATE` blocks)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&files[1]).map_err(|e| {
        pem(
            &cfg.key_path,
            format!("no private key found (expected a PEM PKCS#8, PKCS#1 or SEC1 key): {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match (&cfg.client_ca_path, cfg.mutual()) {
        (Some(ca_path), Some(auth)) => {
            let ca = |message: String| TlsError::ClientCa {
                path: ca_path.clone(),
                message,
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&files[2]) {
                let cert = cert.map_err(|e| ca(format!("not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ca(format!("not a usable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ca("no certificate found".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = match auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            }
            .build()
            .map_err(|e| ca(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Certificate {
            cert: cfg.cert_path.clone(),
            key: cfg.key_path.clone(),
            message: e.to_string(),
        })
}

/// TLS connections accepted on a TCP listener, handshakes done: a stream for tonic
/// ([`TlsListener::into_stream`]) or an axum listener.
pub struct TlsListener {
    accepted: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// The connections as tonic's `serve_with_incoming` takes them.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
        futures::StreamExt::map(
            tokio_stream::wrappers::ReceiverStream::new(self.accepted),
            |(stream, _)| Ok(stream),
        )
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // Shut down: no more connections, ever (axum stops on its own signal).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts TLS connections on `listener` until `shutdown`, each with the configuration of
/// the moment, speaking `alpn`. A failed handshake (no client certificate, one from another
/// CA, an expired one, no TLS at all) closes that connection only; it is logged, never
/// passed on.
pub fn listen(
    listener: TcpListener,
    tls: Arc<Tls>,
    alpn: Alpn,
    shutdown: CancellationToken,
) -> std::io::Result<TlsListener> {
    let local = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(ACCEPTED_BACKLOG);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_IN_FLIGHT));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off rather than spin.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = handshakes.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "{HANDSHAKES_IN_FLIGHT} TLS handshakes in progress; connection closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (tls.acceptor(alpn), tx.clone());
            tokio::spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, peer)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, "TLS handshake refused: {e}"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok(TlsListener {
        accepted: rx,
        local,
    })
}

/// Re-reads the files every `watch_interval_ms` and swaps in what changed, until `shutdown`.
pub fn watch(tls: Arc<Tls>, shutdown: CancellationToken) {
    let every = Duration::from_millis(tls.cfg.watch_interval_ms);
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // The last failure, so a half-written file is reported once, not every tick.
        let mut failing: Option<String> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let t = tls.clone();
            let Ok(result) = tokio::task::spawn_blocking(move || t.reload()).await else {
                continue;
            };
            match result {
                Ok(Reloaded::Unchanged) => failing = None,
                Ok(Reloaded::Replaced) => {
                    failing = None;
                    tracing::info!(cert = %tls.cfg.cert_path.display(), "TLS certificate files changed; new connections use them");
                }
                Err(e) => {
                    let e = e.to_string();
                    if failing.as_ref() != Some(&e) {
                        tracing::warn!(
                            "TLS files changed but cannot be used; keeping the running ones: {e}"
                        );
                        failing = Some(e);
                    }
                }
            }
        }
    });
}

/// Who a verified client certificate names: its subject common name and its subject
/// alternative names (`dns:`, `uri:`, `email:`, `ip:`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientIdentity {
    pub common_name: Option<String>,
    pub alt_names: Vec<String>,
}

impl ClientIdentity {
    /// The identity of a DER certificate; `None` if it does not parse (it was verified, so
    /// that would be a certificate rustls accepts and x509-parser does not).
    pub fn of(cert: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let alt_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(format!("dns:{d}")),
                    GeneralName::URI(u) => Some(format!("uri:{u}")),
                    GeneralName::RFC822Name(e) => Some(format!("email:{e}")),
                    GeneralName::IPAddress(ip) => ip_name(ip).map(|ip| format!("ip:{ip}")),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Self {
            common_name,
            alt_names,
        })
    }

    /// Whether the certificate names `name`: its CN, or a SAN written with or without its
    /// kind (`billing-gw.example.com` or `dns:billing-gw.example.com`).
    pub fn names(&self, name: &str) -> bool {
        self.common_name.as_deref() == Some(name)
            || self
                .alt_names
                .iter()
                .any(|a| a == name || a.split_once(':').is_some_and(|(_, v)| v == name))
    }
}

impl std::fmt::Display for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CN={}", self.common_name.as_deref().unwrap_or(""))?;
        if !self.alt_names.is_empty() {
            write!(f, " SAN={}", self.alt_names.join(","))?;
        }
        Ok(())
    }
}

fn ip_name(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_without_a_ca_is_a_config_error_naming_both_fields() {
        let cfg = TlsConfig {
            cert_path: "c.pem".into(),
            key_path: "k.pem".into(),
            client_ca_path: None,
            client_auth: Some(ClientAuth::Optional),
            watch_interval_ms: 0,
            metrics: true,
        };
        let e = cfg.validate().unwrap_err();
        assert!(
            e.contains("client_auth") && e.contains("client_ca_path"),
            "{e}"
        );
        assert_eq!(cfg.mutual(), None);
        let with_ca = TlsConfig {
            client_ca_path: Some("ca.pem".into()),
            client_auth: None,
            ..cfg
        };
        assert_eq!(with_ca.mutual(), Some(ClientAuth::Required));
    }

    #[test]
    fn a_file_that_is_not_pem_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "nor a key").unwrap();
        let cfg = TlsConfig {
            cert_path: cert.clone(),
            key_path: key,
            client_ca_path: None,
            client_auth: None,
            watch_interval_ms: 0,
            metrics: true,
        };
        let e = Tls::load(&cfg).unwrap_err().to_string();
        assert!(e.starts_with(&cert.display().to_string()), "{e}");
        assert!(e.contains("no certificate found"), "{e}");
    }

    #[test]
    fn an_identity_names_its_common_name_and_alt_names_with_or_without_their_kind() {
        let id = ClientIdentity {
            common_name: Some("pbx-1".into()),
            alt_names: vec!["dns:pbx-1.example.com".into(), "uri:spiffe://t/pbx".into()],
        };
        assert!(id.names("pbx-1"));
        assert!(id.names("pbx-1.example.com"));
        assert!(id.names("dns:pbx-1.example.com"));
        assert!(id.names("spiffe://t/pbx"));
        assert!(!id.names("pbx-2"));
        assert!(!id.names("dns:pbx-1"));
        assert_eq!(
            id.to_string(),
            "CN=pbx-1 SAN=dns:pbx-1.example.com,uri:spiffe://t/pbx"
        );
    }
}
