//! Test certificates for `pension-gateway tls self-signed`: a throw-away CA (its key is not
//! kept) and a server certificate it issued for the given host names, ECDSA P-256. For trying
//! HTTPS locally and in tests only; production certificates come from the bank's PKI
//! (docs/tls.md).
//!
//! With a CA directory ([`generate_with_ca`]) the CA's key is kept there (`ca-key.pem`, 0600)
//! and reused by the next run, so that a second server certificate chains to the CA clients
//! already trust: a certificate rotation without downtime can be rehearsed.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use zeroize::Zeroizing;

use super::TlsError;

/// A CA certificate and a server certificate it issued, with the server's key.
pub struct Bundle {
    /// The CA certificate, PEM (give it to clients: `--ca-file`).
    pub ca_pem: String,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// The server's private key, PKCS#8 PEM. Zeroized on drop.
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"***")
            .finish()
    }
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[0] &= 0x7f; // positive
    SerialNumber::from_slice(&b)
}

/// The validity window: from one hour before `now` (unix seconds) for `days` days.
fn window(now: i64, days: u32) -> Result<(time::OffsetDateTime, time::OffsetDateTime), TlsError> {
    let start = time::OffsetDateTime::from_unix_timestamp(now - 3600).map_err(TlsError::Window)?;
    Ok((start, start + time::Duration::days(i64::from(days.max(1)))))
}

/// The test CA's certificate, self-signed with `ca_key`. Its subject and key are all a leaf's
/// chain depends on (issuer name, authority key identifier from the public key, signature), so
/// the same key rebuilds an issuer for certificates that chain to an earlier `ca.pem`.
fn ca_certificate(
    ca_key: &KeyPair,
    start: time::OffsetDateTime,
    end: time::OffsetDateTime,
) -> Result<rcgen::Certificate, TlsError> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "pension-gateway test CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = start;
    ca.not_after = end;
    ca.serial_number = Some(random_serial());
    ca.self_signed(ca_key).map_err(TlsError::Generate)
}

/// A server certificate for `hosts` issued by `ca_cert`/`ca_key`, with its new key.
fn server_certificate(
    hosts: &[String],
    start: time::OffsetDateTime,
    end: time::OffsetDateTime,
    ca_cert: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> Result<(String, Zeroizing<String>), TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::NoHostName);
    }
    let key = KeyPair::generate().map_err(TlsError::Generate)?;
    let mut leaf = CertificateParams::new(hosts.to_vec()).map_err(TlsError::Generate)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hosts[0].as_str());
    leaf.distinguished_name = dn;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = start;
    leaf.not_after = end;
    leaf.serial_number = Some(random_serial());
    let cert = leaf
        .signed_by(&key, ca_cert, ca_key)
        .map_err(TlsError::Generate)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

/// Generates a CA and a server certificate for `hosts` (DNS names or IP addresses, at least
/// one), valid from one hour before `now` (unix seconds) for `days` days.
pub fn generate(hosts: &[String], now: i64, days: u32) -> Result<Bundle, TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::NoHostName);
    }
    let (start, end) = window(now, days)?;
    let ca_key = KeyPair::generate().map_err(TlsError::Generate)?;
    let ca_cert = ca_certificate(&ca_key, start, end)?;
    let (cert_pem, key_pem) = server_certificate(hosts, start, end, &ca_cert, &ca_key)?;
    Ok(Bundle {
        ca_pem: ca_cert.pem(),
        cert_pem,
        key_pem,
    })
}

/// Like [`generate`], but the CA lives in `ca_dir`: `ca.pem` and `ca-key.pem` (mode 0600) are
/// reused when both are there — the new server certificate chains to the `ca.pem` clients
/// already trust — and created (with the CA valid for `days` days) when neither is. Returns the
/// bundle (its `ca_pem` is the file's) and whether the CA was created.
pub fn generate_with_ca(
    hosts: &[String],
    now: i64,
    days: u32,
    ca_dir: &Path,
) -> Result<(Bundle, bool), TlsError> {
    let (ca_path, key_path) = (ca_dir.join("ca.pem"), ca_dir.join("ca-key.pem"));
    let io = |p: &Path, e: std::io::Error| TlsError::Pem {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let (start, end) = window(now, days)?;
    match (ca_path.exists(), key_path.exists()) {
        (true, true) => {
            let ca_pem = std::fs::read_to_string(&ca_path).map_err(|e| io(&ca_path, e))?;
            let key_pem =
                Zeroizing::new(std::fs::read_to_string(&key_path).map_err(|e| io(&key_path, e))?);
            let ca_key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Pem {
                path: key_path.display().to_string(),
                reason: e.to_string(),
            })?;
            let issuer = ca_certificate(&ca_key, start, end)?;
            let (cert_pem, key_pem) = server_certificate(hosts, start, end, &issuer, &ca_key)?;
            Ok((
                Bundle {
                    ca_pem,
                    cert_pem,
                    key_pem,
                },
                false,
            ))
        }
        (false, false) => {
            let ca_key = KeyPair::generate().map_err(TlsError::Generate)?;
            let ca_cert = ca_certificate(&ca_key, start, end)?;
            let (cert_pem, key_pem) = server_certificate(hosts, start, end, &ca_cert, &ca_key)?;
            let ca_key_pem = Zeroizing::new(ca_key.serialize_pem());
            std::fs::create_dir_all(ca_dir).map_err(|e| io(ca_dir, e))?;
            write_new(&key_path, ca_key_pem.as_bytes(), 0o600)?;
            write_new(&ca_path, ca_cert.pem().as_bytes(), 0o644)?;
            Ok((
                Bundle {
                    ca_pem: ca_cert.pem(),
                    cert_pem,
                    key_pem,
                },
                true,
            ))
        }
        _ => Err(TlsError::HalfCa(ca_dir.to_path_buf())),
    }
}

/// Writes `ca.pem`, `cert.pem` (mode 0644) and `key.pem` (mode 0600) into `dir` (created if
/// missing). Existing files are never overwritten. Returns the three paths.
pub fn write(bundle: &Bundle, dir: &Path) -> Result<[PathBuf; 3], TlsError> {
    let io = |p: &Path, e: std::io::Error| TlsError::Pem {
        path: p.display().to_string(),
        reason: format!("cannot write: {e}"),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let files = [
        (dir.join("ca.pem"), bundle.ca_pem.as_bytes(), 0o644),
        (dir.join("cert.pem"), bundle.cert_pem.as_bytes(), 0o644),
        (dir.join("key.pem"), bundle.key_pem.as_bytes(), 0o600),
    ];
    for (path, _, _) in &files {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(io(
                path,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"),
            ));
        }
    }
    for (path, bytes, mode) in &files {
        write_new(path, bytes, *mode)?;
    }
    let [(a, _, _), (b, _, _), (c, _, _)] = files;
    Ok([a, b, c])
}

/// Creates `path` with `mode` (never overwriting) and writes `bytes` to it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |e: std::io::Error| TlsError::Pem {
        path: path.display().to_string(),
        reason: format!("cannot write: {e}"),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}
