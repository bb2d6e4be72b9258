//! Certificates made in the test, with rcgen: CAs, server and client certificates (valid,
//! expired), written as PEM files for the server's `[server.tls]` and for clients.
#![allow(dead_code)]

use callscribe::server::tls::{ClientAuth, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, cn: &str, sans: &[&str], server: bool, expired: bool) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        if server {
            params
                .subject_alt_names
                .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        }
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf("callscribe test server", &["localhost"], true, false)
    }

    /// A client certificate with common name `cn` and DNS name `cn`.
    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[cn], false, false)
    }

    /// A client certificate that expired in 2021.
    pub fn expired_client(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[cn], false, true)
    }
}

/// The server's certificate files in a temporary folder.
pub struct ServerFiles {
    pub dir: tempfile::TempDir,
}

impl ServerFiles {
    pub fn new(leaf: &Leaf, client_ca: Option<&Ca>) -> ServerFiles {
        let files = ServerFiles {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        files.write(leaf, client_ca);
        files
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    pub fn client_ca(&self) -> PathBuf {
        self.dir.path().join("clients-ca.pem")
    }

    /// Replaces the files as a rotation tool does: each written to a temporary name and
    /// renamed over the old, so a reader never sees half a file.
    pub fn write(&self, leaf: &Leaf, client_ca: Option<&Ca>) {
        let put = |path: PathBuf, text: &str| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write PEM");
            std::fs::rename(&tmp, &path).expect("rename PEM");
        };
        put(self.key(), &leaf.key_pem);
        put(self.cert(), &leaf.cert_pem);
        if let Some(ca) = client_ca {
            put(self.client_ca(), &ca.pem());
        }
    }

    pub fn config(&self, mutual: Option<ClientAuth>, watch_interval_ms: u64) -> TlsConfig {
        TlsConfig {
            cert_path: self.cert(),
            key_path: self.key(),
            client_ca_path: mutual.map(|_| self.client_ca()),
            client_auth: mutual,
            watch_interval_ms,
            metrics: true,
        }
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}
