//! The public listener's TLS: a certificate resolver behind an [`ArcSwap`] so the pair can be
//! replaced while the server runs, and optional mutual TLS.
//!
//! [`ServerTls::reload`] (SIGHUP, a change of the files, the admin reload call) reads the pair
//! again — and, with mutual TLS, the client CRLs and pins ([`super::client_auth`]) — and swaps
//! them in only when all pass every check of [`load_pair`] and of the client policy; a refused
//! reload is logged and counted, and the previous pair and policy keep serving. New handshakes pick up the new pair;
//! connections already open keep the session they negotiated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::client_auth::{ClientAuth, ClientAuthFiles, PolicySummary, SwapVerifier};
use super::{check_chain, provider, read_certificates, read_private_key};
use super::{unix_now, CertInfo, TlsError};
use crate::config::{TlsMinVersion, TlsSettings};
use crate::metrics::Metrics;

/// A validated certificate pair, ready to serve.
pub struct LoadedPair {
    /// The chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// The leaf certificate's details.
    pub leaf: CertInfo,
}

/// The mutual-TLS files of the settings, or `None` without `tls.client_ca_file`.
fn client_auth_files(settings: &TlsSettings) -> Option<ClientAuthFiles> {
    settings.client_ca_file.as_ref().map(|ca| ClientAuthFiles {
        ca: ca.clone(),
        crls: settings.client_crl_files.clone(),
        pins: settings.client_pins_file.clone(),
    })
}

/// The configured pair loaded and checked as at start, or `None` when `tls.cert_file`/`key_file`
/// are not both set.
fn load_checked(settings: &TlsSettings) -> Result<Option<LoadedPair>, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&settings.cert_file, &settings.key_file) else {
        return Ok(None);
    };
    load_pair(cert_file, key_file, unix_now()).map(Some)
}

/// Reads and validates a pair at `now` (unix seconds): the chain parses, is in order and every
/// certificate is inside its validity; the key parses, is usable by rustls and its public key is
/// the leaf's. Nothing of the key is logged or returned in an error.
pub fn load_pair(cert_file: &Path, key_file: &Path, now: i64) -> Result<LoadedPair, TlsError> {
    let chain = read_certificates(cert_file)?;
    let infos = check_chain(cert_file, &chain, now, true)?;
    let key = read_private_key(key_file)?;
    let mismatch = |reason: String| TlsError::KeyMismatch {
        key: key_file.display().to_string(),
        cert: cert_file.display().to_string(),
        reason,
    };
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| mismatch(format!("key not usable: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| mismatch(e.to_string()))?;
    let leaf = infos.into_iter().next().ok_or(TlsError::EmptyChain)?;
    Ok(LoadedPair {
        key: Arc::new(certified),
        leaf,
    })
}

/// Serves whatever pair is current.
#[derive(Debug)]
struct SwapResolver(Arc<ArcSwap<CertifiedKey>>);

impl ResolvesServerCert for SwapResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The served certificate, its files, and the reload that replaces it.
pub struct ServerTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth: Option<Arc<ClientAuth>>,
    min_version: TlsMinVersion,
    current: Arc<ArcSwap<CertifiedKey>>,
    leaf: ArcSwap<CertInfo>,
    metrics: Metrics,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("client_auth", &self.client_auth)
            .field("min_version", &self.min_version)
            .field("serial", &self.leaf.load().serial_hex)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The checks of a start, without serving and without touching metrics or logs (for
    /// `serve --check-config`): the pair parses, the key matches, the chain is valid now and,
    /// with mutual TLS, the client CA, CRL and pins files pass. The leaf's details and the
    /// client policy in force, or `None` when TLS is off.
    pub fn check_settings(
        settings: &TlsSettings,
    ) -> Result<Option<(CertInfo, Option<PolicySummary>)>, TlsError> {
        let Some(pair) = load_checked(settings)? else {
            return Ok(None);
        };
        let policy = match client_auth_files(settings) {
            Some(files) => Some(super::client_auth::check_files(&files, unix_now())?),
            None => None,
        };
        Ok(Some((pair.leaf, policy)))
    }

    /// Loads the configured pair and client policy (refusing to start on any failed check), or
    /// `None` when `tls.cert_file` is not set. Publishes the not-after time.
    pub fn from_settings(
        settings: &TlsSettings,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Self>>, TlsError> {
        let (Some(cert_file), Some(key_file)) = (&settings.cert_file, &settings.key_file) else {
            return Ok(None);
        };
        let Some(pair) = load_checked(settings)? else {
            return Ok(None);
        };
        let client_auth = match client_auth_files(settings) {
            Some(files) => {
                let (auth, policy) = ClientAuth::load(files, unix_now())?;
                tracing::info!(
                    crls = policy.crls,
                    pins = policy.pins.unwrap_or(0),
                    "mutual TLS: client CA loaded"
                );
                Some(Arc::new(auth))
            }
            None => None,
        };
        metrics.tls_not_after.set(pair.leaf.not_after);
        for result in ["ok", "refused"] {
            metrics.tls_reloads.with_label_values(&[result]).inc_by(0);
        }
        tracing::info!(
            cert = %cert_file.display(), serial = %pair.leaf.serial_hex,
            not_after = pair.leaf.not_after, subject = %pair.leaf.subject,
            mutual_tls = client_auth.is_some(),
            "TLS certificate loaded"
        );
        Ok(Some(Arc::new(Self {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            client_auth,
            min_version: settings.min_version,
            current: Arc::new(ArcSwap::new(pair.key)),
            leaf: ArcSwap::from_pointee(pair.leaf),
            metrics: metrics.clone(),
        })))
    }

    /// The rustls configuration of the public listener: the swapping resolver, the minimum
    /// version, and, with mutual TLS, the swapping client verifier (CA read at start: a new
    /// client CA takes a restart; CRLs and pins follow reloads). actix adds the ALPN protocols.
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let versions: &[&rustls::SupportedProtocolVersion] = match self.min_version {
            TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(TlsError::Rustls)?;
        let builder = match &self.client_auth {
            Some(auth) => {
                builder.with_client_cert_verifier(Arc::new(SwapVerifier(Arc::clone(auth))))
            }
            None => builder.with_no_client_auth(),
        };
        Ok(builder.with_cert_resolver(Arc::new(SwapResolver(Arc::clone(&self.current)))))
    }

    /// The files a change of which triggers [`reload`](Self::reload).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_file.clone(), self.key_file.clone()];
        if let Some(auth) = &self.client_auth {
            files.extend(auth.watched_files());
        }
        files
    }

    /// The leaf certificate now served.
    pub fn served(&self) -> Arc<CertInfo> {
        self.leaf.load_full()
    }

    /// Reads and validates the pair again and swaps it in; on any failed check the previous pair
    /// keeps serving. Logs and counts the result (`gateway_tls_reloads_total`).
    pub fn reload(&self) -> Result<Arc<CertInfo>, TlsError> {
        self.reload_at(unix_now())
    }

    /// [`reload`](Self::reload) judged at `now` (unix seconds).
    pub fn reload_at(&self, now: i64) -> Result<Arc<CertInfo>, TlsError> {
        // The pair first, then the client policy (which swaps itself in only when whole); the
        // pair is swapped in only when both passed.
        let checked = load_pair(&self.cert_file, &self.key_file, now).and_then(|pair| {
            if let Some(auth) = &self.client_auth {
                auth.reload(now)?;
            }
            Ok(pair)
        });
        match checked {
            Ok(pair) => {
                let leaf = Arc::new(pair.leaf);
                self.current.store(pair.key);
                self.leaf.store(Arc::clone(&leaf));
                self.metrics.tls_not_after.set(leaf.not_after);
                self.metrics.tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(
                    serial = %leaf.serial_hex, not_after = leaf.not_after,
                    subject = %leaf.subject, "TLS certificate reloaded"
                );
                Ok(leaf)
            }
            Err(e) => {
                self.metrics
                    .tls_reloads
                    .with_label_values(&["refused"])
                    .inc();
                tracing::error!(
                    code = e.code(), error = %e, serving = %self.leaf.load().serial_hex,
                    "TLS certificate reload refused; still serving the previous certificate"
                );
                Err(e)
            }
        }
    }
}
