//! Evidence of what WeChat signed and what the bank signed, kept in the audit row (nonce,
//! timestamp, e = SM3(Z_A ‖ M), signature, key versions), and `audit prove`'s check of both
//! signatures from the row alone — on a SQLite file and (with `TEST_MYSQL_URL`) MySQL.

use crate::common::{self, send, Db, Gateway, Req};
use pension_gateway::audit::prove::{prove, PublicKeys, Verdict};
use pension_gateway::crypto::signing_string::{request_signing_string, response_signing_string};
use pension_gateway::crypto::sm3::{message_digest, z_a};
use pension_gateway::crypto::Signature;
use testkit as testing;

const SIGNER_ID: &[u8] = b"1234567812345678";

async fn gateway(db: Db, dir: &tempfile::TempDir) -> Option<Gateway> {
    let tdb = match db {
        Db::Sqlite => common::sqlite_file_db(dir.path()).await,
        Db::Mysql | Db::MysqlTls => common::test_db(db).await?,
    };
    Some(Gateway::start_on(tdb, |_| {}).await)
}

fn hex_upper(b: &[u8]) -> String {
    hex::encode_upper(b)
}

async fn evidence_is_what_was_on_the_wire_and_proves(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(gw) = gateway(db, &dir).await else {
        return;
    };
    let store = gw.state.accounts().store().clone();
    let svc = gw.service().await;
    let req = Req::query("张三", "11010519491231002X");
    let request_id = req.request_id.clone().unwrap();
    // Signed once: SM2 signatures are randomised, so the header sent is the one compared.
    let auth = req.authorization(&gw.keys);
    let resp = send(&svc, &gw.keys, req.build_with_auth(Some(auth.clone()))).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json);
    assert_eq!(resp.signed_by, Ok(1));

    let rows = store.audit_for_request(&request_id).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert!(row.batch_id.is_some() && !row.undelivered);

    // The request's evidence: the nonce and timestamp sent, WeChat's signature, and e
    // recomputed from the body and path with WeChat's public key (the known vector of this
    // exchange).
    let wechat_pub = gw.keys.wechat[0].1.public_key();
    let rq = row.evidence.request.as_ref().expect("request evidence");
    assert_eq!(rq.nonce, req.nonce);
    assert_eq!(rq.timestamp, req.timestamp.to_string());
    let m = request_signing_string(
        "POST",
        req.path.as_bytes(),
        &req.timestamp.to_string(),
        &req.nonce,
        &req.body,
    );
    assert_eq!(
        rq.digest,
        message_digest(&z_a(SIGNER_ID, &wechat_pub).unwrap(), &m)
    );
    let sig_b64 = auth
        .split("signature=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    assert_eq!(
        rq.signature,
        Signature::from_base64(sig_b64).unwrap().to_raw()
    );
    assert_eq!(row.wechat_key_version, Some(1));

    // The answer's evidence: the WxIns-* headers that left, and e of the body that left.
    let bank_pub = gw.keys.bank[0].1.public_key();
    let rs = row.evidence.response.as_ref().expect("response evidence");
    assert_eq!(Some(rs.nonce.as_str()), resp.header("WxIns-Nonce"));
    assert_eq!(Some(rs.timestamp.as_str()), resp.header("WxIns-Timestamp"));
    assert_eq!(
        rs.signature,
        Signature::from_base64(resp.header("WxIns-Signature").unwrap())
            .unwrap()
            .to_raw()
    );
    let m = response_signing_string(&rs.timestamp, &rs.nonce, &resp.body);
    assert_eq!(
        rs.digest,
        message_digest(&z_a(SIGNER_ID, &bank_pub).unwrap(), &m)
    );
    assert_eq!(row.bank_key_version, 1);

    // `audit prove` from the row alone, with the key directory's public keys.
    let keys = PublicKeys::from_key_dir(gw.keys.dir.path()).unwrap();
    let proof = prove(row, &keys);
    assert_eq!(proof.request.verdict, Verdict::Verified);
    assert_eq!(proof.response.verdict, Verdict::Verified);
    assert!(proof.verified());

    // One flipped signature byte in the database: that signature, and only it, fails.
    for (column, good) in [
        ("req_signature", rq.signature),
        ("resp_signature", rs.signature),
    ] {
        let mut bad = good;
        bad[17] ^= 0x01;
        let set = |sig: &[u8; 64]| {
            format!(
                // The request id is a UUID the test made: safe as a plain literal.
                "UPDATE query_audit SET {column} = X'{}' WHERE request_id = '{request_id}'",
                hex_upper(sig),
            )
        };
        testing::execute_sql(&store, &set(&bad)).await.unwrap();
        let row = store
            .audit_for_request(&request_id)
            .await
            .unwrap()
            .remove(0);
        let proof = prove(&row, &keys);
        let (broken, intact) = if column == "req_signature" {
            (proof.request.verdict, proof.response.verdict)
        } else {
            (proof.response.verdict, proof.request.verdict)
        };
        assert_eq!(broken, Verdict::DoesNotVerify, "{column}");
        assert_eq!(intact, Verdict::Verified, "{column}");
        testing::execute_sql(&store, &set(&good)).await.unwrap();
    }

    // A key version the directory does not hold cannot be checked (and is said so).
    let mut no_bank = keys.clone();
    no_bank.bank.clear();
    assert_eq!(prove(row, &no_bank).response.verdict, Verdict::KeyMissing);

    // The command itself, on the SQLite file: text, JSON and the exit codes.
    if db == Db::Sqlite {
        let cfg = dir.path().join("gateway.toml");
        std::fs::write(
            &cfg,
            format!(
                "[accounts]\nid_pepper = \"{}\"\n[database]\nurl = \"sqlite://{}\"\n[keys]\ndir = \"{}\"\n",
                common::process::random_pepper(),
                dir.path().join("gateway.db").display(),
                gw.keys.dir.path().display()
            ),
        )
        .unwrap();
        let prove_cli = |extra: &[&str], id: &str| {
            let mut args = vec!["--config", cfg.to_str().unwrap(), "audit", "prove", id];
            args.extend_from_slice(extra);
            let out = std::process::Command::new(common::process::BIN)
                .args(&args)
                .env_remove("GATEWAY_CONFIG")
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (code, out, err) = prove_cli(&[], &request_id);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(
            out.contains("request signed by WeChat (key v1): verified")
                && out.contains("answer signed by the bank (key v1): verified")
                && out.contains(&hex::encode(rq.digest)),
            "{out}"
        );
        let (code, out, err) = prove_cli(&["--json"], &request_id);
        assert_eq!(code, Some(0), "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["verdict"], "verified");
        assert_eq!(v["rows"][0]["request"]["verdict"], "verified");
        assert_eq!(v["rows"][0]["response"]["digest"], hex::encode(rs.digest));

        let mut bad = rs.signature;
        bad[0] ^= 0x80;
        testing::execute_sql(
            &store,
            &format!(
                "UPDATE query_audit SET resp_signature = X'{}' WHERE request_id = '{request_id}'",
                hex_upper(&bad)
            ),
        )
        .await
        .unwrap();
        let (code, out, err) = prove_cli(&["--json"], &request_id);
        assert_eq!(code, Some(4), "{out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["rows"][0]["request"]["verdict"], "verified");
        assert_eq!(v["rows"][0]["response"]["verdict"], "does_not_verify");
        let (code, out, _) = prove_cli(&[], "no-such-request");
        assert_eq!(code, Some(3), "{out}");
    }
}

#[actix_web::test]
async fn evidence_proves_sqlite() {
    evidence_is_what_was_on_the_wire_and_proves(Db::Sqlite).await;
}

#[actix_web::test]
async fn evidence_proves_mysql() {
    evidence_is_what_was_on_the_wire_and_proves(Db::Mysql).await;
}
