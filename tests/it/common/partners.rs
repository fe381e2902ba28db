//! Partner channel credentials for tests: one app, one callback partner, one HMAC partner.

use actix_web::test as at;

use super::{Gateway, TestService};

pub const APP: &str = "wbtestapp0000001";
pub const APP_SECRET: &str = "testAppSecret0001testAppSecret0001";
pub const PARTNER: &str = "test-partner";
pub const SALT: &str = "test-salt-0001-for-tests";
pub const FAPP: &str = "fapptest0001";
pub const FAPP_TOKEN: &str = "test-fapp-token-0001";
pub const QUERY: &str =
    r#"{"user_true_name":"张三","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#;

pub fn write_secret(dir: &std::path::Path, name: &str, value: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// A gateway on `db` with the three partner channels on and one credential each.
pub async fn gateway(db: super::Db) -> Option<Gateway> {
    let gw = Gateway::start_with(db, |s| {
        s.partners.open_platform = true;
        s.partners.callback = true;
        s.partners.hmac = true;
    })
    .await?;
    add_partners(&gw);
    Some(gw)
}

/// Adds the test credentials to the gateway's key ring and reloads it.
pub fn add_partners(gw: &Gateway) {
    let dir = gw.keys.dir.path();
    write_secret(dir, "op.secret", APP_SECRET);
    write_secret(dir, "cb.secret", SALT);
    write_secret(dir, "hm.secret", FAPP_TOKEN);
    let mut manifest = std::fs::read_to_string(dir.join("keyring.toml")).unwrap();
    manifest.push_str(&format!(
        "\n[[partner]]\nchannel = \"open-platform\"\nid = \"{APP}\"\nversion = 1\nstate = \"active\"\nsecret = \"op.secret\"\n\
         \n[[partner]]\nchannel = \"callback\"\nid = \"{PARTNER}\"\nversion = 1\nstate = \"active\"\nsecret = \"cb.secret\"\n\
         \n[[partner]]\nchannel = \"hmac\"\nid = \"{FAPP}\"\nversion = 1\nstate = \"active\"\nsecret = \"hm.secret\"\n"
    ));
    std::fs::write(dir.join("keyring.toml"), manifest).unwrap();
    gw.state
        .keyring()
        .reload()
        .expect("partner credentials load");
}

/// POSTs a JSON `body` to `uri` of the test service; the status and the raw answer.
pub async fn post<S: TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    uri: &str,
    body: &str,
) -> (u16, Vec<u8>) {
    let resp = at::call_service(
        svc,
        at::TestRequest::post()
            .uri(uri)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.to_owned())
            .to_request(),
    )
    .await;
    let status = resp.status().as_u16();
    (status, at::read_body(resp).await.to_vec())
}
