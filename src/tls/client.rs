//! Outbound HTTPS: one place builds the awc client every sender uses (`client query`,
//! `client call`, the partner clients, `bench http`). Certificates are always verified — against
//! the platform's roots plus an optional private CA (`--ca-file` / `tls.ca_file`); there is no
//! switch that turns verification off.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};

use super::{provider, read_ca_roots, unix_now, TlsError};

/// The platform's trust anchors (the operating system's store), loaded once per process.
/// Certificates the store holds but rustls cannot use are skipped with a warning; an empty
/// store is not an error here (a private CA may be all that is trusted).
pub fn platform_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "platform trust store: some certificates could not be read");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::debug!(
                added,
                ignored,
                "platform trust store: unusable certificates skipped"
            );
        }
        Arc::new(roots)
    }))
}

/// The TLS configuration of outbound calls: platform roots, plus the CA certificates of
/// `ca_file` when given (read by the public-file rules, each valid now). TLS 1.2 and 1.3;
/// ALPN offers HTTP/2 and HTTP/1.1.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = (*platform_roots()).clone();
    if let Some(path) = ca_file {
        let extra = read_ca_roots(path, unix_now())?;
        roots.roots.extend(extra.roots);
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An awc client speaking `http://` and `https://` with `config` (see [`client_config`]), whole
/// requests bounded by `timeout`.
pub fn http_client_with(config: Arc<ClientConfig>, timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .connector(
            awc::Connector::new()
                .rustls_0_23(config)
                .timeout(timeout)
                .handshake_timeout(timeout),
        )
        .timeout(timeout)
        .finish()
}

/// [`http_client_with`] the configuration of [`client_config`]`(ca_file)`.
pub fn http_client(ca_file: Option<&Path>, timeout: Duration) -> Result<awc::Client, TlsError> {
    Ok(http_client_with(client_config(ca_file)?, timeout))
}
