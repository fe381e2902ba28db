//! Least privilege on MySQL: the gateway serves under an account holding exactly the runtime
//! grants of `docs/mysql.md` — WeChat queries and the open-platform token / ticket / call flow
//! work — and that account cannot change or remove what it may only read or append to.
//! Needs `TEST_MYSQL_URL` (an account that may create users); unset: a note and no test.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::test as at;
use common::partners::{add_partners, APP, APP_SECRET, QUERY};
use common::{send, Db, Gateway, Keys, Req, NOW};
use pension_gateway::accounts::{demo, AccountDirectory};
use pension_gateway::client::partners::OpenPlatformClient;
use pension_gateway::clock::ManualClock;
use pension_gateway::config::DEMO_PEPPER_HEX;
use pension_gateway::server::{build_state, load_keys};
use pension_gateway::store::{Store, StoreOptions};
use serde_json::Value;
use testkit as testing;
use zeroize::Zeroizing;

/// The runtime grants of `docs/mysql.md`, for database `db` and account `who`.
fn runtime_grants(db: &str, who: &str) -> String {
    format!(
        "GRANT SELECT ON `{db}`.`pension_accounts` TO {who};
         GRANT SELECT ON `{db}`.`binding_sessions` TO {who};
         GRANT INSERT ON `{db}`.`query_audit` TO {who};
         GRANT SELECT (`instance_id`, `seq`, `leaf_hash`) ON `{db}`.`query_audit` TO {who};
         GRANT SELECT (`instance_id`, `tree_size`, `note`, `frontier`), INSERT ON `{db}`.`audit_checkpoints` TO {who};
         GRANT INSERT ON `{db}`.`audit_batches` TO {who};
         GRANT INSERT ON `{db}`.`audit_undelivered` TO {who};
         GRANT SELECT, INSERT, DELETE ON `{db}`.`op_grants` TO {who};
         GRANT UPDATE (`used_at_ms`) ON `{db}`.`op_grants` TO {who};
         GRANT SELECT ON `{db}`.`__diesel_schema_migrations` TO {who};"
    )
}

async fn get<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    uri: &str,
) -> Value {
    let resp = at::call_service(svc, at::TestRequest::get().uri(uri).to_request()).await;
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&at::read_body(resp).await).unwrap()
}

async fn audit_rows(store: &Store, request_id: &str) -> usize {
    // The audit insert may complete just after the answer: wait a bounded moment for it.
    for _ in 0..50 {
        let n = store.audit_for_request(request_id).await.unwrap().len();
        if n > 0 {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    0
}

#[actix_web::test]
async fn the_runtime_account_serves_and_cannot_alter_or_delete() {
    let Some(admin) = common::test_db(Db::Mysql).await else {
        return;
    };
    let admin_url = admin.url.clone().unwrap();
    // Accounts and the demo session are written by the import account (here: the admin).
    let pepper = Zeroizing::new(hex::decode(DEMO_PEPPER_HEX).unwrap());
    demo::seed_demo(&AccountDirectory::new(admin.store.clone(), pepper), NOW)
        .await
        .unwrap();

    let (_cleanup, runtime_url) =
        common::temp_mysql_user(&admin_url, "pg_rt_", runtime_grants).await;

    // Start as `serve` does: open, check the schema (current: nothing to apply, no DDL).
    let store = Store::open(
        &runtime_url,
        StoreOptions {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            create_if_missing: false,
        },
    )
    .await
    .expect("the runtime account connects");
    assert!(store
        .run_migrations()
        .await
        .expect("schema check")
        .is_empty());

    let keys = Keys::new();
    let mut s = common::settings(&keys);
    s.partners.open_platform = true;
    let clock = Arc::new(ManualClock::at(NOW));
    let ring = load_keys(&s).expect("key ring loads");
    // The audit chain as `serve` sets it up, a checkpoint after every row: the writer reads the
    // chain columns back and inserts checkpoints under these grants.
    let witness = tempfile::tempdir().unwrap();
    s.audit.witness_file = witness.path().join("witness.log");
    s.audit.checkpoint_rows = 1;
    pension_gateway::server::chain_audit(&s, &store, &ring).expect("audit chain");
    let state = build_state(&s, store, ring, clock.clone()).expect("state");
    let gw = Gateway {
        state,
        clock,
        keys,
        db: admin,
    };
    add_partners(&gw);
    let svc = gw.service().await;

    // A signed WeChat query: 200, verified, one audit row.
    let p = &demo::DEMO_PEOPLE[0];
    let req = Req::query(p.name, p.id_number);
    let rid = req.request_id.clone().unwrap();
    let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(r.signed_by.is_ok());
    assert_eq!(audit_rows(&gw.db.store, &rid).await, 1);
    let chained = gw.db.store.audit_for_request(&rid).await.unwrap();
    assert_eq!(chained[0].chain.as_ref().map(|c| c.seq), Some(0));
    let instance = &chained[0].chain.as_ref().unwrap().instance_id;
    assert_eq!(
        gw.db.store.audit_checkpoints(instance).await.unwrap().len(),
        1
    );

    // Open platform under the runtime account: an expired grant for the purge (DELETE), a token
    // (INSERT), a user ticket (INSERT) consumed by a signed call (UPDATE of used_at_ms).
    testing::mysql_exec(
        &admin_url,
        None,
        &format!(
            "INSERT INTO op_grants (id, app_id, kind, secret_version, issued_at_ms, expires_at_ms) \
             VALUES ('{}', '{APP}', 'access_token', 1, 1, 2)",
            "0".repeat(32)
        ),
    )
    .await
    .unwrap();
    let token = get(
        &svc,
        &format!("/api/oauth2/access_token?app_id={APP}&secret={APP_SECRET}&grant_type=client_credential&version=2.0.0"),
    )
    .await;
    let token = token["access_token"]
        .as_str()
        .expect("token issued")
        .to_owned();
    assert!(
        gw.db
            .store
            .grant_by_id(&"0".repeat(32))
            .await
            .unwrap()
            .is_none(),
        "the expired grant was purged"
    );
    let user_data = pension_gateway::partners::callback::url_encode(r#"{"USER_ID":"u-1001"}"#);
    let k = get(
        &svc,
        &format!("/api/oauth2/api_ticket?app_id={APP}&access_token={token}&type=user&version=2.0.0&user_data={user_data}&mechant_id=m1"),
    )
    .await;
    let ticket = k["tickets"][0]["value"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let body = QUERY.replace("\"corpno\"", "\"USER_ID\":\"u-1001\",\"corpno\"");
    let client = OpenPlatformClient::new("", APP, Zeroizing::new(APP_SECRET.to_owned()));
    for expected in ["60840000", "60841017"] {
        let c = client.sign_call(
            "pension",
            "10001",
            Some("user"),
            &body,
            &ticket,
            &pension_gateway::crypto::nonce::generate(),
        );
        let (status, bytes) = common::partners::post(&svc, &c.url, &body).await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["code"], expected, "{v}");
    }

    // What the runtime account must not do: each statement is refused by the server.
    let audit_before = gw.db.store.count_audit().await.unwrap();
    let accounts_before = gw.db.store.count_accounts().await.unwrap();
    for stmt in [
        "UPDATE pension_accounts SET holder_name = 'x'",
        "DELETE FROM pension_accounts",
        "INSERT INTO pension_accounts (account_no, holder_name, phone, id_digest, status, updated_at) VALUES ('X1', 'x', '', REPEAT('a', 32), 1, 0)",
        "UPDATE query_audit SET outcome = 'x'",
        "DELETE FROM query_audit",
        "SELECT request_id FROM query_audit",
        "UPDATE audit_checkpoints SET note = 'x'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE TABLE query_audit",
        "DELETE FROM binding_sessions",
        "INSERT INTO binding_sessions (session_id, created_at, expires_at) VALUES ('s', 0, 1)",
        "UPDATE op_grants SET app_id = 'x'",
        "ALTER TABLE query_audit ADD COLUMN x INT",
        "ALTER TABLE pension_accounts DROP COLUMN phone",
        "DROP TABLE query_audit",
        "CREATE TABLE runtime_made (x INT)",
        "DELETE FROM __diesel_schema_migrations",
    ] {
        let e = testing::mysql_exec(&runtime_url, None, stmt)
            .await
            .expect_err(stmt)
            .to_string();
        assert!(e.contains("denied"), "{stmt}: {e}");
    }
    assert_eq!(gw.db.store.count_audit().await.unwrap(), audit_before);
    assert_eq!(gw.db.store.count_accounts().await.unwrap(), accounts_before);
}
