//! MySQL over TLS against the TLS-only MariaDB of `TEST_MYSQL_TLS_URL` (its CA in
//! `TEST_MYSQL_TLS_CA_FILE`): what is refused at start, and how. The gateway's own MySQL test
//! sets also run over this server (`wechat::end_to_end::mysql_tls::`, `db::store::mysql_tls::`,
//! `db::import::mysql_tls::`). Unset: a note and no test; set and unreachable: the tests fail.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{send, Db, Gateway, Req};
use pension_gateway::accounts::demo::DEMO_PEOPLE;
use pension_gateway::config::Settings;
use pension_gateway::store::{Store, StoreError, StoreOptions};

/// A CA that signed nothing the test server presents (generated once for this test).
const UNRELATED_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBvjCCAWWgAwIBAgIUFXuxDWBjeVCOMGIt9A/X2Lyqb1QwCgYIKoZIzj0EAwIw
LDEqMCgGA1UEAwwhcGVuc2lvbi1nYXRld2F5IHVucmVsYXRlZCB0ZXN0IENBMCAX
DTI2MTIwMTE3NDQwNVoYDzIxMjYxMTA3MTc0NDA1WjAsMSowKAYDVQQDDCFwZW5z
aW9uLWdhdGV3YXkgdW5yZWxhdGVkIHRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQeDd7BNGbi7v0cmku40DQEJcTKiOYBpi02d/iHMn+wKloPlr6G/MCa
xguXG9oFvxnY+JQQgobMiLYlSsIqOIF3o2MwYTAdBgNVHQ4EFgQUc3Sb1Zu6hd97
PsOGuT8Mrfct88owHwYDVR0jBBgwFoAUc3Sb1Zu6hd97PsOGuT8Mrfct88owDwYD
VR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDRwAwRAIg
cdx1SZl2hCJcstNo+V55p3snLeRZa2gqKHjFdTVv6TkCIBaN/9FLJJvbUxPmu0l/
Y+oiqkTDiOLnKz6XbwOCsLBX
-----END CERTIFICATE-----
";

fn opts() -> StoreOptions {
    StoreOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        create_if_missing: false,
    }
}

/// `url` without its query string (no TLS parameters).
fn without_params(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

fn write_public(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    path
}

/// Opens like `serve` does (settings → `open_store`) and returns the start-up error text.
async fn start_error(url: &str, ca: Option<&Path>) -> String {
    let mut s = Settings::default();
    s.database.url = url.to_owned();
    s.database.ca_file = ca.map(Path::to_path_buf);
    s.database.acquire_timeout_ms = 5000;
    let t0 = Instant::now();
    let r = pension_gateway::server::open_store(&s).await;
    // Refused by the handshake, not by the deadline: well under the acquire timeout.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    match r {
        Ok(_) => panic!("start with {url} / {ca:?} must be refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_ca_file_verifies_the_server_and_serves_a_signed_query() {
    let Some((url, ca)) = common::mysql_tls() else {
        return;
    };
    // Without the TLS parameter in the URL, the CA file alone turns TLS on.
    let store = Store::open_with_ca(&without_params(&url), Some(&ca), opts())
        .await
        .expect("the CA file turns TLS on and verifies the server");
    store.ping().await.unwrap();
    // The whole gateway over TLS: a signed query answered 200 with its audit row.
    let gw = Gateway::start(Db::MysqlTls).await.unwrap();
    let svc = gw.service().await;
    let p = &DEMO_PEOPLE[0];
    let req = Req::query(p.name, p.id_number);
    let rid = req.request_id.clone().unwrap();
    let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(r.signed_by.is_ok());
    let row = gw.db.store.audit_for_request(&rid).await.unwrap();
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].http_status, 200);
}

#[tokio::test]
async fn a_plain_connection_to_the_tls_only_server_is_refused() {
    let Some((url, _ca)) = common::mysql_tls() else {
        return;
    };
    let plain = without_params(&url);
    let e = Store::open(&plain, opts()).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    let e = start_error(&plain, None).await;
    assert!(e.contains("database"), "{e}");
}

#[tokio::test]
async fn a_wrong_ca_is_refused_at_start_naming_the_setting() {
    let Some((url, _ca)) = common::mysql_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = write_public(dir.path(), "other-ca.pem", UNRELATED_CA, 0o644);
    let e = start_error(&url, Some(&wrong)).await;
    assert!(e.contains("database.ca_file"), "{e}");
    assert!(e.contains("other-ca.pem"), "{e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // No CA file: the built-in web roots do not know the private CA either; the error says
    // which setting to use.
    let e = start_error(&url, None).await;
    assert!(e.contains("database.ca_file"), "{e}");
}

#[tokio::test]
async fn bad_ca_files_are_refused_before_connecting() {
    let Some((url, ca)) = common::mysql_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&ca).unwrap();
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (
            write_public(dir.path(), "writable.pem", &text, 0o666),
            "group or others",
        ),
        (
            write_public(dir.path(), "empty.pem", "not a certificate\n", 0o644),
            "no PEM certificate",
        ),
        (dir.path().join("missing.pem"), "missing.pem"),
    ];
    for (path, want) in cases {
        let e = Store::open_with_ca(&url, Some(&path), opts())
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Config(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("database.ca_file") && msg.contains(want),
            "{msg}"
        );
    }
    #[cfg(unix)]
    {
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&ca, &link).unwrap();
        let e = Store::open_with_ca(&url, Some(&link), opts())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }
    // A CA file beside a URL that turns TLS off is contradictory.
    let off = format!("{}?require_ssl=false", without_params(&url));
    let e = Store::open_with_ca(&off, Some(&ca), opts())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("require_ssl=false"), "{e}");
    // A CA file with SQLite is a configuration mistake.
    let e = Store::open_with_ca("sqlite::memory:", Some(&ca), opts())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("SQLite"), "{e}");
}
