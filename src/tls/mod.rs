//! TLS with rustls (`ring` provider): the public listener's certificate with hot reload and
//! optional mutual TLS ([`server`]), the outbound HTTPS client every sender uses ([`client`]),
//! and test certificates for `pension-gateway tls self-signed` ([`self_signed`]).
//!
//! Certificate and key files are read by the key ring's file rules (`keyring::file_rules`):
//! opened once without following a symbolic link and checked on the handle; the private key
//! must be mode 0600 or 0400, certificates must not be group- or world-writable.

pub mod client;
pub mod client_auth;
pub mod self_signed;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

use crate::keyring::file_rules::open_checked;
use crate::keyring::{KeyFileKind, KeyRingError};

/// Why a certificate, key or CA file was refused, or a TLS configuration could not be built.
/// Messages name files and rules, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file breaks a file rule or cannot be read.
    #[error(transparent)]
    File(#[from] KeyRingError),
    /// The file is not the PEM it should be.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A certificate could not be parsed as X.509.
    #[error("{path}: certificate {index} is not a valid X.509 certificate")]
    Certificate {
        /// The file.
        path: String,
        /// Position in the file, 0 first.
        index: usize,
    },
    /// A certificate is past its not-after time.
    #[error("{path}: certificate {index} expired at {not_after} (unix time)")]
    Expired {
        /// The file.
        path: String,
        /// Position in the file, 0 first.
        index: usize,
        /// Its not-after time, unix seconds.
        not_after: i64,
    },
    /// A certificate is before its not-before time.
    #[error("{path}: certificate {index} is not valid before {not_before} (unix time)")]
    NotYetValid {
        /// The file.
        path: String,
        /// Position in the file, 0 first.
        index: usize,
        /// Its not-before time, unix seconds.
        not_before: i64,
    },
    /// The chain is out of order: a certificate's issuer is not the next one's subject.
    #[error(
        "{path}: certificate {index} is not issued by certificate {next}; the file must hold \
         the leaf first, then each issuer in turn"
    )]
    ChainOrder {
        /// The file.
        path: String,
        /// The certificate whose issuer does not match.
        index: usize,
        /// The one that should have issued it.
        next: usize,
    },
    /// The private key does not belong to the certificate, or is of a kind rustls cannot use.
    #[error("{key}: the private key does not match the certificate in {cert} ({reason})")]
    KeyMismatch {
        /// The key file.
        key: String,
        /// The certificate file.
        cert: String,
        /// Which check failed.
        reason: String,
    },
    /// A CA file gave no usable trust anchor.
    #[error("{path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A client pins file (`tls.client_pins_file`) does not parse.
    #[error("{}: line {line}: {reason}", path.display())]
    Pins {
        /// The file.
        path: std::path::PathBuf,
        /// The line, 1 first (0: the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A certificate revocation list (`tls.client_crl_files`) is unusable or out of date.
    #[error("{}: {reason}", path.display())]
    Crl {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(rustls::Error),
    /// A certificate file parsed to no certificate at all.
    #[error("TLS configuration: the certificate chain is empty")]
    EmptyChain,
    /// `tls self-signed`: certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(rcgen::Error),
    /// `tls self-signed`: the validity window starts outside the representable times.
    #[error("certificate generation: the start time is out of range: {0}")]
    Window(time::error::ComponentRange),
    /// `tls self-signed` was given no host name.
    #[error("at least one host name is needed")]
    NoHostName,
    /// `tls self-signed --ca-dir`: the directory holds one half of a CA.
    #[error(
        "{}: must hold both ca.pem and ca-key.pem (to reuse the CA) or neither (to create one)",
        .0.display()
    )]
    HalfCa(std::path::PathBuf),
}

impl TlsError {
    /// A stable code for the refusal (for answers and logs; the message has the detail).
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::File(_) => "tls_file",
            TlsError::Pem { .. } => "tls_pem",
            TlsError::Certificate { .. } => "tls_certificate",
            TlsError::Expired { .. } => "tls_expired",
            TlsError::NotYetValid { .. } => "tls_not_yet_valid",
            TlsError::ChainOrder { .. } => "tls_chain_order",
            TlsError::KeyMismatch { .. } => "tls_key_mismatch",
            TlsError::Ca { .. } => "tls_ca",
            TlsError::Pins { .. } => "tls_pins",
            TlsError::Crl { .. } => "tls_crl",
            TlsError::Rustls(_)
            | TlsError::EmptyChain
            | TlsError::Generate(_)
            | TlsError::Window(_)
            | TlsError::NoHostName
            | TlsError::HalfCa(_) => "tls_config",
        }
    }
}

/// The crypto provider of every TLS configuration here: rustls' `ring` provider, named
/// explicitly so no process-wide default is needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the gateway reports about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lower-case hex of its big-endian bytes.
    pub serial_hex: String,
    /// SHA-256 of the DER encoding, lower-case hex (the usual "fingerprint").
    pub sha256_hex: String,
    /// Not-before time, unix seconds.
    pub not_before: i64,
    /// Not-after time, unix seconds.
    pub not_after: i64,
    /// Subject, RFC 4514 style.
    pub subject: String,
    /// Issuer, RFC 4514 style.
    pub issuer: String,
}

/// Reads serial, fingerprint, validity, subject and issuer of one DER certificate; `None` when
/// it is not X.509.
pub fn certificate_info(der: &[u8]) -> Option<CertInfo> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let validity = cert.validity();
    Some(CertInfo {
        serial_hex: hex::encode(cert.raw_serial()),
        sha256_hex: hex::encode(sha2::Sha256::digest(der)),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
    })
}

/// Parses every `CERTIFICATE` block of PEM text (other blocks are skipped); at least one.
pub fn parse_certificates(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem) {
        certs.push(c.map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            reason: format!("not valid PEM ({e})"),
        })?);
    }
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            reason: "holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)".into(),
        });
    }
    Ok(certs)
}

/// Reads a certificate file (public-file rules) and parses its certificates.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = open_checked(path, KeyFileKind::PublicKey)?;
    parse_certificates(path, &bytes)
}

/// Reads a private key file (secret rules: 0600 or 0400, opened once) and parses its one key.
/// The PEM text is zeroized on drop; the error never quotes it.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = open_checked(path, KeyFileKind::Secret)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::Pem {
        path: path.display().to_string(),
        reason: "holds no PEM private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)".into(),
    })
}

/// Checks every certificate of a chain at `now` (unix seconds): parses as X.509, inside its
/// validity, and (for a served chain, `ordered`) each one issued by the next. Returns the info
/// of each, leaf first.
pub fn check_chain(
    path: &Path,
    certs: &[CertificateDer<'_>],
    now: i64,
    ordered: bool,
) -> Result<Vec<CertInfo>, TlsError> {
    let name = || path.display().to_string();
    let mut infos = Vec::with_capacity(certs.len());
    for (index, c) in certs.iter().enumerate() {
        let info = certificate_info(c).ok_or_else(|| TlsError::Certificate {
            path: name(),
            index,
        })?;
        if now > info.not_after {
            return Err(TlsError::Expired {
                path: name(),
                index,
                not_after: info.not_after,
            });
        }
        if now < info.not_before {
            return Err(TlsError::NotYetValid {
                path: name(),
                index,
                not_before: info.not_before,
            });
        }
        infos.push(info);
    }
    if ordered {
        for (index, pair) in infos.windows(2).enumerate() {
            if let [this, next] = pair {
                if this.issuer != next.subject {
                    return Err(TlsError::ChainOrder {
                        path: name(),
                        index,
                        next: index + 1,
                    });
                }
            }
        }
    }
    Ok(infos)
}

/// A CA file read once under the public-file rules (`keyring::file_rules`): its PEM text, for
/// the drivers that take PEM (MySQL, Redis), and the trust anchors parsed from the same bytes.
pub struct CaFile {
    /// The file's bytes as read.
    pub pem: Vec<u8>,
    /// Every certificate of the file as a trust anchor.
    pub roots: rustls::RootCertStore,
}

/// Reads a CA file — the one reader of `tls.client_ca_file`, `tls.ca_file`, `database.ca_file`
/// and `replay.redis_ca_file`: public-file rules, at least one PEM certificate, every one valid
/// X.509 inside its validity at `now` (unix seconds) and accepted as a trust anchor. Callers
/// prefix the error with their setting's name.
pub fn read_ca_file(path: &Path, now: i64) -> Result<CaFile, TlsError> {
    let pem = open_checked(path, KeyFileKind::PublicKey)?.to_vec();
    let certs = parse_certificates(path, &pem)?;
    check_chain(path, &certs, now, false)?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in certs.into_iter().enumerate() {
        roots.add(c).map_err(|e| TlsError::Ca {
            path: path.display().to_string(),
            reason: format!("certificate {i} is not usable as a trust anchor ({e})"),
        })?;
    }
    Ok(CaFile { pem, roots })
}

/// The trust anchors of a CA file ([`read_ca_file`]).
pub fn read_ca_roots(path: &Path, now: i64) -> Result<rustls::RootCertStore, TlsError> {
    read_ca_file(path, now).map(|ca| ca.roots)
}

/// Installs rustls' `ring` provider as the process-wide default unless one is installed: the
/// MySQL and Redis drivers build their TLS configurations from that default (the gateway's own
/// configurations name [`provider`] explicitly). Idempotent; losing a race with another
/// installer is fine, a provider is installed either way.
pub fn ensure_default_provider() {
    if CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The current unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
