//! TLS on the public listener and for outbound calls: a real gateway (`serve_state`) on
//! 127.0.0.1:0 with certificates made at test time (rcgen). Handshakes at TLS 1.3 and 1.2 and
//! the minimum version; our client refusing a wrong host name and an unknown CA; plain HTTP on
//! the TLS port; mutual TLS; a signed query over HTTPS; the certificate rotated under load with
//! zero failures; expired and mismatched pairs refused while the old pair keeps serving.
//! Plus known vectors for the certificate reader and the `[tls]` settings.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pension_gateway::clock::SystemClock;
use pension_gateway::config::{Settings, TlsMinVersion};
use pension_gateway::metrics::Metrics;
use pension_gateway::server::{build_state, load_keys, serve_state, Listeners};
use pension_gateway::tls::client::{client_config, http_client, http_client_with};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConfig;

const ADMIN_TOKEN: &str = "dGVzdCBhZG1pbiB0b2tlbiwgbm90IGEgc2VjcmV0ISE=";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// A test CA issuing server and client certificates.
struct Pki {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// One issued certificate with its key.
struct Issued {
    cert_pem: String,
    key_pem: String,
    serial_hex: String,
    /// SHA-256 of the SubjectPublicKeyInfo, lower-case hex (a `spki-sha256` pin).
    spki_sha256: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // Signs certificates and revocation lists (a CRL issuer needs cRLSign).
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = at(now() - 86_400);
        p.not_after = at(now() + 30 * 86_400);
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `hosts` valid from `from` to `until` (unix seconds), serial `serial`.
    fn issue(&self, hosts: &[&str], from: i64, until: i64, serial: u64, client: bool) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("client"),
        );
        p.not_before = at(from);
        p.not_after = at(until);
        p.serial_number = Some(rcgen::SerialNumber::from(serial));
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let info = pension_gateway::tls::certificate_info(cert.der()).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial_hex: info.serial_hex,
            spki_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.public_key_der())),
        }
    }

    /// A revocation list of this CA revoking `serials`, valid from an hour ago for `life` seconds.
    fn crl(&self, serials: &[u64], life: i64) -> String {
        let params = rcgen::CertificateRevocationListParams {
            this_update: at(now() - 3600),
            next_update: at(now() - 3600 + life),
            crl_number: rcgen::SerialNumber::from(now() as u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: at(now() - 60),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .unwrap()
            .pem()
            .unwrap()
    }

    fn server(&self, serial: u64) -> Issued {
        self.issue(
            &["localhost", "127.0.0.1"],
            now() - 3600,
            now() + 86_400,
            serial,
            false,
        )
    }
}

/// Writes `bytes` to `path` with `mode` through a temporary file renamed over it (as an operator
/// installs a certificate: the gateway never reads a half-written file).
fn install(path: &Path, bytes: &[u8], mode: u32) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
}

/// Files of one gateway's TLS setup.
struct TlsDir {
    dir: tempfile::TempDir,
}

impl TlsDir {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn install_pair(&self, cert_pem: &str, key_pem: &str) {
        // Key first, then certificate: a watcher that sees only one of them refuses the pair
        // once and takes it on the next change.
        install(&self.path("key.pem"), key_pem.as_bytes(), 0o600);
        install(&self.path("cert.pem"), cert_pem.as_bytes(), 0o644);
    }
    fn install_ca(&self, name: &str, pem: &str) -> PathBuf {
        let p = self.path(name);
        install(&p, pem.as_bytes(), 0o644);
        p
    }
}

struct Server {
    addr: SocketAddr,
    admin: SocketAddr,
    metrics: Metrics,
    _keys: common::Keys,
    _token_dir: tempfile::TempDir,
}

/// Starts the gateway as production does, TLS from `tls_dir` (`cert.pem`, `key.pem`), with the
/// admin listener; `tweak` adjusts the settings.
fn start(tls_dir: &TlsDir, tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Server {
    let keys = common::Keys::new();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin-token");
    install(&token_file, ADMIN_TOKEN.as_bytes(), 0o600);
    let public = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    let mut s = common::settings(&keys);
    s.keys.watch_interval_secs = 0;
    s.server.workers = 2;
    s.server.admin_token_file = Some(token_file);
    s.limits.per_identity_per_minute = 0;
    s.tls.cert_file = Some(tls_dir.path("cert.pem"));
    s.tls.key_file = Some(tls_dir.path("key.pem"));
    tweak(&mut s);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let store = pension_gateway::store::Store::open(
                "sqlite::memory:",
                pension_gateway::store::StoreOptions {
                    max_connections: 4,
                    acquire_timeout: Duration::from_secs(5),
                    create_if_missing: true,
                },
            )
            .await
            .unwrap();
            store.run_migrations().await.unwrap();
            let ring = load_keys(&s).unwrap();
            let state = build_state(&s, store, ring, Arc::new(SystemClock)).unwrap();
            pension_gateway::accounts::demo::seed_demo(state.accounts(), now())
                .await
                .unwrap();
            tx.send(state.metrics().clone()).unwrap();
            let listeners = Listeners {
                public,
                ops: None,
                admin: Some(admin),
            };
            serve_state(&s, state, listeners).await.unwrap();
        });
    });
    let metrics = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    Server {
        addr,
        admin: admin_addr,
        metrics,
        _keys: keys,
        _token_dir: token_dir,
    }
}

/// A rustls client trusting `ca_pem`, limited to `versions`, optionally with a client certificate.
fn rustls_client(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client_cert: Option<&Issued>,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some(c) => {
            let chain = CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    // Every probe is a full handshake: a resumed session would carry the certificate of the
    // session it resumes, not the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

use rustls::pki_types::pem::PemObject;

/// One handshake plus `GET /healthz`: the negotiated version, the peer's leaf serial and the
/// first bytes of the answer; `Err` when the handshake or the exchange fails.
async fn probe(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<(rustls::ProtocolVersion, String, Vec<u8>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").unwrap();
    let fut = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version().ok_or("no version")?;
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or("no peer certificate")?;
        let serial = pension_gateway::tls::certificate_info(leaf)
            .ok_or("peer certificate unreadable")?
            .serial_hex;
        Ok::<_, String>((version, serial, buf))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Waits until the TLS listener completes a handshake.
async fn wait_up(addr: SocketAddr, config: Arc<ClientConfig>) {
    let started = Instant::now();
    while probe(addr, Arc::clone(&config)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_reload(server: &Server) -> (u16, serde_json::Value) {
    let http = awc::Client::default();
    let mut r = http
        .post(format!("http://{}/admin/keyring/reload", server.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn metric(server: &Server, line_start: &str) -> String {
    server
        .metrics
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_default()
        .to_string()
}

#[actix_web::test]
async fn handshakes_at_tls13_and_tls12_and_min_version_is_respected() {
    let pki = Pki::new("versions CA");
    let dir = TlsDir::new();
    let leaf = pki.server(1);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let tls12 = rustls_client(&pki.ca_pem(), &[&rustls::version::TLS12], None);
    let tls13 = rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], None);

    let server = start(&dir, |_| {});
    wait_up(server.addr, Arc::clone(&tls13)).await;
    let (v, serial, answer) = probe(server.addr, Arc::clone(&tls13)).await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
    assert_eq!(serial, leaf.serial_hex);
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let (v, _, answer) = probe(server.addr, Arc::clone(&tls12)).await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert_eq!(
        metric(&server, "gateway_tls_certificate_not_after_seconds"),
        format!(
            "gateway_tls_certificate_not_after_seconds {}",
            pension_gateway::tls::certificate_info(
                &CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()
            )
            .unwrap()
            .not_after
        )
    );

    let dir13 = TlsDir::new();
    dir13.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let strict = start(&dir13, |s| s.tls.min_version = TlsMinVersion::Tls13);
    wait_up(strict.addr, Arc::clone(&tls13)).await;
    let err = probe(strict.addr, tls12).await.unwrap_err();
    assert!(
        err.to_lowercase().contains("version") || err.contains("alert"),
        "TLS 1.2 must be refused when min_version = 1.3: {err}"
    );
}

#[actix_web::test]
async fn our_client_refuses_a_wrong_host_name_and_an_unknown_ca() {
    let pki = Pki::new("client-check CA");
    let dir = TlsDir::new();
    let leaf = pki.server(7);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let ca_file = dir.install_ca("ca.pem", &pki.ca_pem());
    let server = start(&dir, |_| {});
    wait_up(
        server.addr,
        rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], None),
    )
    .await;

    // With the private CA: the certificate names 127.0.0.1 and localhost.
    let http = http_client(Some(&ca_file), Duration::from_secs(10)).unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/healthz", server.addr.port());
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }
    // Unknown CA: platform roots only.
    let platform = http_client(None, Duration::from_secs(10)).unwrap();
    let err = platform
        .get(format!("https://127.0.0.1:{}/healthz", server.addr.port()))
        .send()
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    // Wrong host name: a certificate for another name, from the trusted CA.
    let other_dir = TlsDir::new();
    let other = pki.issue(&["other.example"], now() - 60, now() + 3600, 8, false);
    other_dir.install_pair(&other.cert_pem, &other.key_pem);
    let other_server = start(&other_dir, |_| {});
    let trusting = client_config(Some(&ca_file)).unwrap();
    let started = Instant::now();
    loop {
        // Up once the port accepts TCP; every TLS attempt must fail on the name.
        if std::net::TcpStream::connect(other_server.addr).is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let err = http_client_with(trusting, Duration::from_secs(10))
        .get(format!(
            "https://127.0.0.1:{}/healthz",
            other_server.addr.port()
        ))
        .send()
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[actix_web::test]
async fn plain_http_on_the_tls_port_gets_no_http_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("plain CA");
    let dir = TlsDir::new();
    let leaf = pki.server(3);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let server = start(&dir, |_| {});
    wait_up(
        server.addr,
        rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], None),
    )
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(
        !buf.windows(5).any(|w| w == b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

/// The handshake or the exchange failed, or nothing came back.
fn no_answer(r: &Result<(rustls::ProtocolVersion, String, Vec<u8>), String>) -> bool {
    match r {
        Ok((_, _, answer)) => answer.is_empty(),
        Err(_) => true,
    }
}

#[actix_web::test]
async fn mutual_tls_refuses_a_client_without_certificate_and_serves_one_with() {
    let pki = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let stranger = Pki::new("stranger CA");
    let dir = TlsDir::new();
    let leaf = pki.server(11);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let client_ca = dir.install_ca("clients.pem", &clients.ca_pem());
    let server = start(&dir, move |s| s.tls.client_ca_file = Some(client_ca));
    let good = clients.issue(&["wechat-client"], now() - 60, now() + 3600, 21, true);
    let bad = stranger.issue(&["wechat-client"], now() - 60, now() + 3600, 22, true);
    for versions in [&[&rustls::version::TLS13], &[&rustls::version::TLS12]] {
        let with = rustls_client(&pki.ca_pem(), versions, Some(&good));
        wait_up(server.addr, Arc::clone(&with)).await;
        let (_, _, answer) = probe(server.addr, with).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let without = rustls_client(&pki.ca_pem(), versions, None);
        let refused = probe(server.addr, without).await;
        assert!(
            no_answer(&refused),
            "no client certificate must get no answer: {refused:?}"
        );
        let wrong = rustls_client(&pki.ca_pem(), versions, Some(&bad));
        let refused = probe(server.addr, wrong).await;
        assert!(
            no_answer(&refused),
            "a certificate from another CA must get no answer: {refused:?}"
        );
    }
}

#[actix_web::test]
async fn a_signed_query_over_https_answers_200_with_a_verified_signature() {
    let pki = Pki::new("query CA");
    let dir = TlsDir::new();
    let leaf = pki.server(5);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let ca_file = dir.install_ca("ca.pem", &pki.ca_pem());
    let server = start(&dir, |_| {});
    wait_up(
        server.addr,
        rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], None),
    )
    .await;
    let client = server._keys.client(1, true);
    let p = &pension_gateway::accounts::demo::DEMO_PEOPLE[0];
    let body = serde_json::to_vec(&serde_json::json!({"user_true_name": p.name,
        "user_identify_card_num": p.id_number, "corpno": "weibao"}))
    .unwrap();
    let signed = client
        .sign_request(
            "POST",
            "/v1/pension/account",
            &body,
            now(),
            &pension_gateway::crypto::nonce::generate(),
        )
        .unwrap();
    let http = http_client(Some(&ca_file), Duration::from_secs(10)).unwrap();
    let mut resp = http
        .post(format!(
            "https://localhost:{}/v1/pension/account",
            server.addr.port()
        ))
        .insert_header(("Authorization", signed.authorization))
        .insert_header(("Request-ID", uuid::Uuid::new_v4().to_string()))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer = resp.body().await.unwrap();
    let headers = resp.headers().clone();
    assert!(headers.contains_key("WxIns-Signature"));
    let version = client
        .verify_response(
            |n| headers.get(n).and_then(|v| v.to_str().ok()),
            &answer,
            now(),
        )
        .unwrap();
    assert_eq!(version, 1);
}

/// Requests the load sends in the rotation test, in total.
const LOAD_REQUESTS: usize = 3_000;

#[actix_web::test]
async fn certificate_rotated_under_load_with_zero_failures_and_bad_pairs_refused() {
    let pki = Pki::new("rotation CA");
    let dir = TlsDir::new();
    let first = pki.server(100);
    dir.install_pair(&first.cert_pem, &first.key_pem);
    let ca_file = dir.install_ca("ca.pem", &pki.ca_pem());
    let server = start(&dir, |_| {});
    let probe_cfg = rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], None);
    wait_up(server.addr, Arc::clone(&probe_cfg)).await;
    let tls = client_config(Some(&ca_file)).unwrap();

    let sent = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (sent, ok, stop, failures, tls) = (
            sent.clone(),
            ok.clone(),
            stop.clone(),
            failures.clone(),
            tls.clone(),
        );
        let url = format!("https://localhost:{}/healthz", server.addr.port());
        tasks.push(actix_web::rt::spawn(async move {
            let mut http = http_client_with(Arc::clone(&tls), Duration::from_secs(10));
            let mut mine = 0usize;
            while !stop.load(Ordering::SeqCst)
                && sent.fetch_add(1, Ordering::SeqCst) < LOAD_REQUESTS
            {
                mine += 1;
                // A fresh client (new connection, new handshake) every 50 requests.
                if mine % 50 == worker {
                    http = http_client_with(Arc::clone(&tls), Duration::from_secs(10));
                }
                match http.get(url.as_str()).send().await {
                    Ok(mut r) if r.status() == 200 => match r.body().await {
                        Ok(b) if b.as_ref() == b"ok" => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        other => failures.lock().unwrap().push(format!("body: {other:?}")),
                    },
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("HTTP {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(format!("transport: {e}")),
                }
            }
        }));
    }
    let wait_for = |n: usize| {
        let ok = ok.clone();
        async move {
            let started = Instant::now();
            while ok.load(Ordering::SeqCst) < n && started.elapsed() < Duration::from_secs(60) {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Rotation 1 and 2, each under load.
    let mut serving = first.serial_hex.clone();
    for (step, serial) in [(1usize, 101u64), (2, 102)] {
        wait_for(step * LOAD_REQUESTS / 4).await;
        let next = pki.server(serial);
        dir.install_pair(&next.cert_pem, &next.key_pem);
        let (status, body) = admin_reload(&server).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["tls"]["status"], "reloaded", "{body}");
        assert_eq!(body["tls"]["serial"], next.serial_hex.as_str());
        let (_, seen, _) = probe(server.addr, Arc::clone(&probe_cfg)).await.unwrap();
        assert_eq!(
            seen, next.serial_hex,
            "a new connection sees the new certificate"
        );
        assert_ne!(seen, serving);
        serving = next.serial_hex;
    }

    // An expired pair and a mismatched pair: refused, counted, the current one keeps serving.
    wait_for(3 * LOAD_REQUESTS / 4).await;
    let expired = pki.issue(&["localhost"], now() - 7200, now() - 3600, 103, false);
    let other = pki.server(104);
    let spare = pki.server(105);
    for (cert, key, code) in [
        (&expired.cert_pem, &expired.key_pem, "tls_expired"),
        (&other.cert_pem, &spare.key_pem, "tls_key_mismatch"),
    ] {
        dir.install_pair(cert, key);
        let (status, body) = admin_reload(&server).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["tls"]["status"], "refused", "{body}");
        assert_eq!(body["tls"]["code"], code, "{body}");
        assert_eq!(body["tls"]["serial"], serving.as_str());
        let (_, seen, answer) = probe(server.addr, Arc::clone(&probe_cfg)).await.unwrap();
        assert_eq!(seen, serving, "the previous certificate keeps serving");
        assert!(answer.starts_with(b"HTTP/1.1 200"));
    }
    assert_eq!(
        metric(&server, "gateway_tls_reloads_total{result=\"refused\"}"),
        "gateway_tls_reloads_total{result=\"refused\"} 2"
    );
    assert_eq!(
        metric(&server, "gateway_tls_reloads_total{result=\"ok\"}"),
        "gateway_tls_reloads_total{result=\"ok\"} 2"
    );

    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(ok.load(Ordering::SeqCst), LOAD_REQUESTS);
}

#[actix_web::test]
async fn a_changed_certificate_file_is_picked_up_by_the_watch() {
    let pki = Pki::new("watch CA");
    let dir = TlsDir::new();
    let first = pki.server(200);
    dir.install_pair(&first.cert_pem, &first.key_pem);
    let server = start(&dir, |s| s.keys.watch_interval_secs = 1);
    let cfg = rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], None);
    wait_up(server.addr, Arc::clone(&cfg)).await;
    let next = pki.server(201);
    dir.install_pair(&next.cert_pem, &next.key_pem);
    let started = Instant::now();
    loop {
        let (_, seen, _) = probe(server.addr, Arc::clone(&cfg)).await.unwrap();
        if seen == next.serial_hex {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the new certificate was not picked up"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn start_refuses_a_loose_key_file_and_a_broken_pair() {
    let pki = Pki::new("start CA");
    let dir = TlsDir::new();
    let leaf = pki.server(300);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let metrics = Metrics::new().unwrap();
    let mut s = pension_gateway::config::TlsSettings::default();
    assert!(
        pension_gateway::tls::server::ServerTls::from_settings(&s, &metrics)
            .unwrap()
            .is_none()
    );
    s.cert_file = Some(dir.path("cert.pem"));
    s.key_file = Some(dir.path("key.pem"));
    assert!(
        pension_gateway::tls::server::ServerTls::from_settings(&s, &metrics)
            .unwrap()
            .is_some()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path("key.pem"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = pension_gateway::tls::server::ServerTls::from_settings(&s, &metrics).unwrap_err();
        assert_eq!(e.code(), "tls_file", "{e}");
        std::os::unix::fs::symlink(dir.path("key.pem"), dir.path("link.pem")).unwrap();
        s.key_file = Some(dir.path("link.pem"));
        let e = pension_gateway::tls::server::ServerTls::from_settings(&s, &metrics).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
    // The message names files, never key material.
    let spare = pki.server(301);
    dir.install_pair(&leaf.cert_pem, &spare.key_pem);
    s.key_file = Some(dir.path("key.pem"));
    let e = pension_gateway::tls::server::ServerTls::from_settings(&s, &metrics).unwrap_err();
    assert_eq!(e.code(), "tls_key_mismatch");
    assert!(!e.to_string().contains("PRIVATE"), "{e}");
    let future = pki.issue(&["localhost"], now() + 3600, now() + 7200, 302, false);
    dir.install_pair(&future.cert_pem, &future.key_pem);
    let e = pension_gateway::tls::server::ServerTls::from_settings(&s, &metrics).unwrap_err();
    assert_eq!(e.code(), "tls_not_yet_valid");
}

#[test]
fn self_signed_bundle_serves_and_verifies() {
    let b = pension_gateway::tls::self_signed::generate(
        &["localhost".into(), "127.0.0.1".into()],
        now(),
        30,
    )
    .unwrap();
    assert!(!format!("{b:?}").contains("PRIVATE KEY"));
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = pension_gateway::tls::self_signed::write(&b, dir.path()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Never overwrites.
    assert!(pension_gateway::tls::self_signed::write(&b, dir.path()).is_err());
    let pair = pension_gateway::tls::server::load_pair(&cert, &key, now()).unwrap();
    assert_eq!(pair.leaf.subject, "CN=localhost");
    assert!(pair.leaf.not_after > now() + 29 * 86_400);
    let roots = pension_gateway::tls::read_ca_roots(&ca, now()).unwrap();
    assert_eq!(roots.len(), 1);
}

/// Known vector: a certificate made once with `openssl ca -selfsign` (P-256, serial 0x1f2e3d4c5b6a,
/// 2024-01-01 to 2034-01-01); serial, SHA-256 fingerprint and validity as printed by
/// `openssl x509 -serial -fingerprint -sha256 -dates`.
#[test]
fn certificate_info_known_vector() {
    let der = CertificateDer::from_pem_slice(VECTOR_CERT.as_bytes()).unwrap();
    let info = pension_gateway::tls::certificate_info(&der).unwrap();
    assert_eq!(info.serial_hex, VECTOR_SERIAL);
    assert_eq!(info.sha256_hex, VECTOR_SHA256);
    assert_eq!(info.not_before, VECTOR_NOT_BEFORE);
    assert_eq!(info.not_after, VECTOR_NOT_AFTER);
    assert_eq!(info.subject, "CN=vector.example");
    assert!(pension_gateway::tls::certificate_info(b"not a certificate").is_none());
    let path = Path::new("vector.pem");
    let chain = pension_gateway::tls::parse_certificates(path, VECTOR_CERT.as_bytes()).unwrap();
    assert_eq!(chain.len(), 1);
    let e =
        pension_gateway::tls::check_chain(path, &chain, VECTOR_NOT_AFTER + 1, true).unwrap_err();
    assert_eq!(e.code(), "tls_expired");
    let e =
        pension_gateway::tls::check_chain(path, &chain, VECTOR_NOT_BEFORE - 1, true).unwrap_err();
    assert_eq!(e.code(), "tls_not_yet_valid");
    assert!(pension_gateway::tls::check_chain(path, &chain, VECTOR_NOT_BEFORE, true).is_ok());
    assert!(pension_gateway::tls::parse_certificates(path, b"-----BEGIN NOTHING-----").is_err());
}

#[test]
fn tls_settings_from_the_environment_and_their_rules() {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let s = Settings::load(
        None,
        Settings::demo(),
        env(&[
            ("GATEWAY__TLS__CERT_FILE", "/etc/gw/cert.pem"),
            ("GATEWAY__TLS__KEY_FILE", "/etc/gw/key.pem"),
            ("GATEWAY__TLS__MIN_VERSION", "1.3"),
            ("GATEWAY__TLS__CA_FILE", "/etc/gw/wechat-ca.pem"),
        ]),
    )
    .unwrap();
    assert!(s.tls.inbound());
    assert_eq!(s.tls.min_version, TlsMinVersion::Tls13);
    assert_eq!(
        s.tls.cert_file.as_deref(),
        Some(Path::new("/etc/gw/cert.pem"))
    );
    assert_eq!(
        s.tls.ca_file.as_deref(),
        Some(Path::new("/etc/gw/wechat-ca.pem"))
    );
    // The demo default: no TLS.
    let demo = Settings::load(None, Settings::demo(), Vec::new()).unwrap();
    assert!(!demo.tls.inbound());
    assert_eq!(demo.tls.min_version, TlsMinVersion::Tls12);
    for (pairs, needle) in [
        (vec![("GATEWAY__TLS__CERT_FILE", "/c.pem")], "tls.key_file"),
        (vec![("GATEWAY__TLS__KEY_FILE", "/k.pem")], "tls.cert_file"),
        (
            vec![("GATEWAY__TLS__CLIENT_CA_FILE", "/ca.pem")],
            "tls.client_ca_file",
        ),
        (vec![("GATEWAY__TLS__MIN_VERSION", "1.1")], "min_version"),
        (vec![("GATEWAY__TLS__VERIFY", "false")], "verify"),
    ] {
        let e = Settings::load(None, Settings::demo(), env(&pairs)).unwrap_err();
        assert!(e.to_string().contains(needle), "{pairs:?}: {e}");
    }
}

const VECTOR_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBVTCB+6ADAgECAgYfLj1MW2owCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwOdmVj
dG9yLmV4YW1wbGUwHhcNMjQwMTAxMDAwMDAwWhcNMzQwMTAxMDAwMDAwWjAZMRcw
FQYDVQQDDA52ZWN0b3IuZXhhbXBsZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA
BPIv9Xe2xkS3dfSKmtW3hbggsmvlGJMHWf4iEQytXOBZEuCXzTYy0a6beSSGwDSU
3rB7HlShSX55rEoy0zi+q42jLzAtMAwGA1UdEwEB/wQCMAAwHQYDVR0OBBYEFPvl
hitEUdzGEvJ0iTv73Mom6akEMAoGCCqGSM49BAMCA0kAMEYCIQC1LmBetbKaT7Lo
XeUUPv3uSPbTVi+qy6dsI2udreWMvQIhANS7DNQw/JnxaCJwj/7gTKFcXSbhLUlo
1MvTUxjdZphj
-----END CERTIFICATE-----
";
const VECTOR_SERIAL: &str = "1f2e3d4c5b6a";
const VECTOR_SHA256: &str = "5e8bf9e1d70d1d1d2fd459ed79a8f4a30e05bf6eecfc81feab7f49b6757bf2ab";
const VECTOR_NOT_BEFORE: i64 = 1_704_067_200;
const VECTOR_NOT_AFTER: i64 = 2_019_686_400;

/// One handshake with client certificate `client`: whether `GET /healthz` was answered 200.
async fn client_served(server: &Server, pki: &Pki, client: &Issued) -> bool {
    let config = rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], Some(client));
    matches!(probe(server.addr, config).await, Ok((_, _, a)) if a.starts_with(b"HTTP/1.1 200"))
}

/// Finding 9: with `tls.client_pins_file` a certificate of the client CA is served only when it
/// matches a pin — by SPKI SHA-256, by subject (RFC 4514) or by subjectAltName — and the pins
/// are re-read with the certificate (admin reload); a broken pins file is refused and the
/// previous pins stay.
#[actix_web::test]
async fn mutual_tls_pins_admit_the_pinned_client_and_refuse_the_others() {
    let pki = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let dir = TlsDir::new();
    let leaf = pki.server(31);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let a = clients.issue(&["partner-a.example"], now() - 60, now() + 3600, 41, true);
    let b = clients.issue(&["partner-b.example"], now() - 60, now() + 3600, 42, true);
    let client_ca = dir.install_ca("clients.pem", &clients.ca_pem());
    let pins = dir.install_ca(
        "pins",
        format!("# partner A\nspki-sha256 {}\n", a.spki_sha256).as_str(),
    );
    let server = start(&dir, move |s| {
        s.tls.client_ca_file = Some(client_ca);
        s.tls.client_pins_file = Some(pins);
    });
    wait_up(
        server.addr,
        rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], Some(&a)),
    )
    .await;
    assert!(client_served(&server, &pki, &a).await, "pinned by SPKI");
    assert!(
        !client_served(&server, &pki, &b).await,
        "same CA, not pinned"
    );

    // Re-pinned to B by subject: takes effect on the reload, A is now refused.
    dir.install_ca("pins", "subject CN=partner-b.example\n");
    let (status, body) = admin_reload(&server).await;
    assert_eq!(status, 200, "{body}");
    assert!(client_served(&server, &pki, &b).await, "pinned by subject");
    assert!(!client_served(&server, &pki, &a).await, "no longer pinned");

    // By subjectAltName.
    dir.install_ca("pins", "san-dns PARTNER-A.example\n");
    assert_eq!(admin_reload(&server).await.0, 200);
    assert!(client_served(&server, &pki, &a).await, "pinned by SAN");
    assert!(!client_served(&server, &pki, &b).await);

    // A broken pins file: the reload is refused (409, code tls_pins), the SAN pin stays.
    dir.install_ca("pins", "fingerprint 0011\n");
    let (status, body) = admin_reload(&server).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["tls"]["code"], "tls_pins", "{body}");
    assert!(client_served(&server, &pki, &a).await);
    assert!(!client_served(&server, &pki, &b).await);
}

/// Finding 9: with `tls.client_crl_files` a revoked client certificate is refused; a CRL
/// replaced at run time takes effect on the reload, and an out-of-date CRL is refused (409,
/// `tls_crl`) while the previous list keeps deciding.
#[actix_web::test]
async fn a_revoked_client_is_refused_and_a_crl_replaced_at_run_time_takes_effect() {
    let pki = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let dir = TlsDir::new();
    let leaf = pki.server(51);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let a = clients.issue(&["partner-a.example"], now() - 60, now() + 3600, 61, true);
    let b = clients.issue(&["partner-b.example"], now() - 60, now() + 3600, 62, true);
    let client_ca = dir.install_ca("clients.pem", &clients.ca_pem());
    let crl = dir.install_ca("clients.crl", &clients.crl(&[62], 86_400));
    let server = start(&dir, move |s| {
        s.tls.client_ca_file = Some(client_ca);
        s.tls.client_crl_files = vec![crl];
    });
    wait_up(
        server.addr,
        rustls_client(&pki.ca_pem(), &[&rustls::version::TLS13], Some(&a)),
    )
    .await;
    assert!(client_served(&server, &pki, &a).await);
    assert!(!client_served(&server, &pki, &b).await, "B is revoked");

    // The new list revokes A instead.
    dir.install_ca("clients.crl", &clients.crl(&[61], 86_400));
    let (status, body) = admin_reload(&server).await;
    assert_eq!(status, 200, "{body}");
    assert!(!client_served(&server, &pki, &a).await, "A is revoked now");
    assert!(
        client_served(&server, &pki, &b).await,
        "B is no longer revoked"
    );

    // A list past its next update: refused, the previous list stays in force.
    dir.install_ca("clients.crl", &clients.crl(&[], 60));
    let (status, body) = admin_reload(&server).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["tls"]["code"], "tls_crl", "{body}");
    assert!(!client_served(&server, &pki, &a).await);
    assert!(client_served(&server, &pki, &b).await);
}

/// The settings of finding 9: pins and CRLs need mutual TLS; `--check-config`'s reader refuses
/// an out-of-date CRL and a pins file without a pin, and counts what is in force.
#[test]
fn client_pins_and_crl_settings_and_their_checks() {
    let pki = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let dir = TlsDir::new();
    let leaf = pki.server(71);
    dir.install_pair(&leaf.cert_pem, &leaf.key_pem);
    let mut s = Settings::default();
    s.accounts.id_pepper = "00".repeat(32);
    s.tls.cert_file = Some(dir.path("cert.pem"));
    s.tls.key_file = Some(dir.path("key.pem"));
    s.tls.client_pins_file = Some(dir.install_ca("pins", "# none yet\n"));
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("tls.client_ca_file"), "{err}");
    s.tls.client_ca_file = Some(dir.install_ca("clients.pem", &clients.ca_pem()));
    s.validate().unwrap();
    let check = pension_gateway::tls::server::ServerTls::check_settings;
    let err = check(&s.tls).unwrap_err();
    assert_eq!(err.code(), "tls_pins", "{err}");
    dir.install_ca("pins", "san-dns partner-a.example\nsan-ip 10.0.0.7\n");
    s.tls.client_crl_files = vec![dir.install_ca("clients.crl", &clients.crl(&[9], 60))];
    let err = check(&s.tls).unwrap_err();
    assert_eq!(err.code(), "tls_crl", "{err}");
    assert!(err.to_string().contains("clients.crl"), "{err}");
    dir.install_ca("clients.crl", &clients.crl(&[9], 86_400));
    let (_, policy) = check(&s.tls).unwrap().unwrap();
    let policy = policy.unwrap();
    assert_eq!((policy.crls, policy.pins), (1, Some(2)));
}

/// Known vector for subject pins: the RFC 4514 text of a subject with an escaped comma and a
/// Chinese organisation, as `openssl x509 -noout -subject -nameopt RFC2253,-esc_msb` prints it
/// (checked against the `openssl` command when one is installed).
#[test]
fn subject_pin_text_is_rfc4514_as_openssl_prints_it() {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["partner-c.example".to_string()]).unwrap();
    // A fresh name (the parameters start with rcgen's own CN in first place).
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "CN");
    p.distinguished_name
        .push(DnType::OrganizationName, "微众, 测试");
    p.distinguished_name.push(DnType::CommonName, "partner-c");
    let cert = p.self_signed(&key).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
    let text = pension_gateway::tls::client_auth::subject_rfc4514(&parsed).unwrap();
    assert_eq!(text, "CN=partner-c,O=微众\\, 测试,C=CN");
    let pins = pension_gateway::tls::client_auth::parse_pins(
        Path::new("pins"),
        &format!("subject {text}\n"),
    )
    .unwrap();
    assert!(pension_gateway::tls::client_auth::matches_pins(
        cert.der(),
        &pins
    ));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("c.pem"), cert.pem()).unwrap();
    if let Ok(out) = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253,-esc_msb",
            "-in",
        ])
        .arg(tmp.path().join("c.pem"))
        .output()
    {
        let printed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(printed.trim().trim_start_matches("subject="), text);
    }
}
