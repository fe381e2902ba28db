//! Mutual TLS on the public listener: the client CA, optional revocation lists and optional
//! pins, behind a swap so that lists and pins are re-read with the certificate.
//!
//! A CA alone trusts every certificate it ever issued, for its whole life. Two optional
//! narrowings:
//!
//! - **CRLs** (`tls.client_crl_files`): rustls' `WebPkiClientVerifier` checks the client's chain
//!   against them; a revoked certificate is refused, and so is one whose status no list gives
//!   (fail closed: a missing list for an intermediate refuses its clients rather than trusting
//!   them), and a list past its next-update time refuses every client until a fresh one is
//!   installed.
//! - **Pins** (`tls.client_pins_file`): after the CA (and CRL) check, the client's end-entity
//!   certificate must match one pin — the SHA-256 of its SubjectPublicKeyInfo, its subject, or
//!   one of its subjectAltNames.
//!
//! [`ClientAuth::reload`] builds the whole policy afresh from the files and swaps it in only if
//! every file passes; otherwise the previous policy keeps deciding. The CA file is read at start
//! (its names are the hints sent to clients); a new client CA takes a restart.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use sha2::Digest;
use x509_parser::extensions::GeneralName;

use super::{provider, read_ca_file, TlsError};
use crate::keyring::file_rules::open_checked;
use crate::keyring::KeyFileKind;

/// The files of mutual TLS.
#[derive(Debug, Clone)]
pub struct ClientAuthFiles {
    /// `tls.client_ca_file`.
    pub ca: PathBuf,
    /// `tls.client_crl_files`.
    pub crls: Vec<PathBuf>,
    /// `tls.client_pins_file`.
    pub pins: Option<PathBuf>,
}

/// One pin of a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// SHA-256 of the DER SubjectPublicKeyInfo.
    SpkiSha256([u8; 32]),
    /// The subject as RFC 4514 text ([`subject_rfc4514`]).
    Subject(String),
    /// A DNS name in subjectAltName (ASCII case-insensitive).
    SanDns(String),
    /// A URI in subjectAltName (exact).
    SanUri(String),
    /// An e-mail address in subjectAltName (exact).
    SanEmail(String),
    /// An IP address in subjectAltName.
    SanIp(IpAddr),
}

/// Parses a pins file: one pin a line as `<kind> <value>`, blank lines and `#` comments
/// ignored; at least one pin.
pub fn parse_pins(path: &Path, text: &str) -> Result<Vec<Pin>, TlsError> {
    let bad = |line: usize, reason: String| TlsError::Pins {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut pins = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, value) = line
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .ok_or_else(|| bad(i + 1, "expected `<kind> <value>`".into()))?;
        let pin = match kind {
            "spki-sha256" => {
                let bytes = hex::decode(value)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| bad(i + 1, "spki-sha256 takes 64 hex digits".into()))?;
                Pin::SpkiSha256(bytes)
            }
            "subject" => Pin::Subject(value.to_owned()),
            "san-dns" => Pin::SanDns(value.to_ascii_lowercase()),
            "san-uri" => Pin::SanUri(value.to_owned()),
            "san-email" => Pin::SanEmail(value.to_owned()),
            "san-ip" => Pin::SanIp(
                value
                    .parse()
                    .map_err(|_| bad(i + 1, format!("`{value}` is not an IP address")))?,
            ),
            other => {
                return Err(bad(
                    i + 1,
                    format!(
                        "unknown pin kind `{other}` (spki-sha256, subject, san-dns, san-uri, \
                         san-email, san-ip)"
                    ),
                ))
            }
        };
        pins.push(pin);
    }
    if pins.is_empty() {
        return Err(bad(0, "holds no pin".into()));
    }
    Ok(pins)
}

/// RFC 4514 short names of the usual attribute types (as `openssl x509 -nameopt RFC2253`
/// prints them); others are written as dotted OIDs.
fn attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// Escapes an attribute value as RFC 4514 §2.4 asks.
fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The subject of a certificate as RFC 4514 text: the last RDN first, `,` between RDNs, `+`
/// inside one — what `openssl x509 -noout -subject -nameopt RFC2253,-esc_msb` prints after
/// `subject=`. `None` for a value that is not a string.
pub fn subject_rfc4514(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let mut out = String::new();
    let rdns: Vec<_> = cert.subject().iter_rdn().collect();
    for (n, rdn) in rdns.iter().rev().enumerate() {
        if n > 0 {
            out.push(',');
        }
        for (m, attr) in rdn.iter().enumerate() {
            if m > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            out.push_str(attribute_name(&oid).unwrap_or(&oid));
            out.push('=');
            escape_value(attr.as_str().ok()?, &mut out);
        }
    }
    Some(out)
}

/// Whether the DER certificate `der` matches any of `pins`.
pub fn matches_pins(der: &[u8], pins: &[Pin]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let spki: [u8; 32] = sha2::Sha256::digest(cert.public_key().raw).into();
    let subject = subject_rfc4514(&cert);
    let sans: Vec<GeneralName<'_>> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.clone())
        .unwrap_or_default();
    pins.iter().any(|pin| match pin {
        Pin::SpkiSha256(want) => bool::from(subtle::ConstantTimeEq::ct_eq(&spki[..], &want[..])),
        Pin::Subject(want) => subject.as_deref() == Some(want.as_str()),
        Pin::SanDns(want) => sans
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(want))),
        Pin::SanUri(want) => sans
            .iter()
            .any(|n| matches!(n, GeneralName::URI(u) if u == want)),
        Pin::SanEmail(want) => sans
            .iter()
            .any(|n| matches!(n, GeneralName::RFC822Name(e) if e == want)),
        Pin::SanIp(want) => sans.iter().any(|n| match n {
            GeneralName::IPAddress(b) => ip_of(b).is_some_and(|ip| ip == *want),
            _ => false,
        }),
    })
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Reads a CRL file (public-file rules): PEM `X509 CRL` blocks or one DER list; each parses,
/// and is not past its next-update time at `now`.
pub fn read_crls(
    path: &Path,
    now: i64,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::Crl {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = open_checked(path, KeyFileKind::PublicKey)?;
    let crls: Vec<CertificateRevocationListDer<'static>> =
        if bytes.starts_with(b"-----") || bytes.windows(5).any(|w| w == b"-----") {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("not valid PEM ({e})")))?
        } else {
            vec![CertificateRevocationListDer::from(bytes.to_vec())]
        };
    if crls.is_empty() {
        return Err(bad(
            "holds no CRL (no -----BEGIN X509 CRL----- block)".into()
        ));
    }
    for (i, crl) in crls.iter().enumerate() {
        let (_, parsed) = x509_parser::parse_x509_crl(crl)
            .map_err(|_| bad(format!("list {i} is not a valid X.509 CRL")))?;
        if let Some(next) = parsed.next_update() {
            if next.timestamp() < now {
                return Err(bad(format!(
                    "list {i} is past its next update ({} unix time); install a fresh one",
                    next.timestamp()
                )));
            }
        }
    }
    Ok(crls)
}

/// One complete client policy: the CA verifier (with its CRLs) and the pins.
struct Policy {
    verifier: Arc<dyn ClientCertVerifier>,
    pins: Option<Vec<Pin>>,
}

/// What is in force, for logs and `--check-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySummary {
    /// CRLs loaded.
    pub crls: usize,
    /// Pins loaded (`None`: no pinning).
    pub pins: Option<usize>,
}

fn build_policy(
    files: &ClientAuthFiles,
    roots: &Arc<RootCertStore>,
    now: i64,
) -> Result<(Policy, PolicySummary), TlsError> {
    let mut crls = Vec::new();
    for path in &files.crls {
        crls.extend(read_crls(path, now)?);
    }
    let count = crls.len();
    let pins = match &files.pins {
        Some(path) => {
            let bytes = open_checked(path, KeyFileKind::PublicKey)?;
            let text = std::str::from_utf8(&bytes).map_err(|_| TlsError::Pins {
                path: path.clone(),
                line: 0,
                reason: "not UTF-8 text".into(),
            })?;
            Some(parse_pins(path, text)?)
        }
        None => None,
    };
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
        .with_crls(crls)
        .enforce_revocation_expiration()
        .build()
        .map_err(|e| TlsError::Ca {
            path: files.ca.display().to_string(),
            reason: e.to_string(),
        })?;
    let summary = PolicySummary {
        crls: count,
        pins: pins.as_ref().map(Vec::len),
    };
    Ok((Policy { verifier, pins }, summary))
}

/// Checks the mutual-TLS files at `now` as a start would, without serving.
pub fn check_files(files: &ClientAuthFiles, now: i64) -> Result<PolicySummary, TlsError> {
    let roots = Arc::new(read_ca_file(&files.ca, now)?.roots);
    build_policy(files, &roots, now).map(|(_, s)| s)
}

/// The client-certificate verifier of the public listener: the current policy behind a swap.
pub struct ClientAuth {
    files: ClientAuthFiles,
    roots: Arc<RootCertStore>,
    hints: Vec<DistinguishedName>,
    current: ArcSwap<Policy>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Reads the CA, the CRLs and the pins at `now`; refuses on any failed check.
    pub fn load(files: ClientAuthFiles, now: i64) -> Result<(Self, PolicySummary), TlsError> {
        let roots = Arc::new(read_ca_file(&files.ca, now)?.roots);
        let hints = roots.subjects();
        let (policy, summary) = build_policy(&files, &roots, now)?;
        Ok((
            Self {
                files,
                roots,
                hints,
                current: ArcSwap::from_pointee(policy),
            },
            summary,
        ))
    }

    /// Re-reads the CRLs and the pins (the CA stays as at start) and swaps them in when every
    /// file passes; otherwise the previous policy stays.
    pub fn reload(&self, now: i64) -> Result<PolicySummary, TlsError> {
        let (policy, summary) = build_policy(&self.files, &self.roots, now)?;
        self.current.store(Arc::new(policy));
        Ok(summary)
    }

    /// The files a change of which triggers a reload.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.files
            .crls
            .iter()
            .cloned()
            .chain(self.files.pins.clone())
            .collect()
    }
}

/// The verifier rustls holds: a thin handle on the shared [`ClientAuth`].
#[derive(Debug)]
pub struct SwapVerifier(pub Arc<ClientAuth>);

impl ClientCertVerifier for SwapVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.0.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let policy = self.0.current.load();
        let verified = policy
            .verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        match &policy.pins {
            Some(pins) if !matches_pins(end_entity, pins) => {
                tracing::warn!(
                    "mutual TLS: a client certificate issued by the client CA matches no pin of \
                     tls.client_pins_file; handshake refused"
                );
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
            _ => Ok(verified),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current
            .load()
            .verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current
            .load()
            .verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current.load().verifier.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_file_parses_each_kind_and_refuses_junk() {
        let p = Path::new("pins");
        let text = "# partner A\nspki-sha256 00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n\
                    subject CN=partner-a,O=Example\\, Inc.,C=CN\n\nsan-dns Partner-A.example\n\
                    san-uri spiffe://bank/partner-a\nsan-email ops@partner-a.example\nsan-ip 10.0.0.7\n";
        let pins = parse_pins(p, text).unwrap();
        assert_eq!(pins.len(), 6);
        assert_eq!(
            pins[1],
            Pin::Subject("CN=partner-a,O=Example\\, Inc.,C=CN".into())
        );
        assert_eq!(pins[2], Pin::SanDns("partner-a.example".into()));
        assert_eq!(pins[5], Pin::SanIp("10.0.0.7".parse().unwrap()));
        for junk in [
            "spki-sha256 abcd",
            "cn foo",
            "san-ip 300.1.1.1",
            "subject",
            "# only\n",
        ] {
            assert!(parse_pins(p, junk).is_err(), "{junk}");
        }
    }
}
