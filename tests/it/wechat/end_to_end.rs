//! The WeChat channel end to end: the real actix app, the real store (SQLite and MySQL), the
//! real key ring on disk; requests signed by the crypto core as WeChat signs them; every
//! response's WxIns signature verified with the bank public key.

use crate::common;

use common::{send, Db, Gateway, Req, NOW};
use pension_gateway::accounts::demo::{DEMO_PEOPLE, DEMO_SESSION_ID};
use pension_gateway::store::BindingSession;

/// Runs each scenario against SQLite, MySQL, and MySQL over TLS.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[actix_web::test] async fn $name() { super::$name(super::Db::Sqlite).await } )* }
        mod mysql { $( #[actix_web::test] async fn $name() { super::$name(super::Db::Mysql).await } )* }
        mod mysql_tls { $( #[actix_web::test] async fn $name() { super::$name(super::Db::MysqlTls).await } )* }
    };
}

on_both_backends!(
    happy_path_every_status,
    response_fields_are_exact,
    session_rules,
    name_mismatch,
    invalid_parameters,
    header_errors,
    tampering_is_refused,
    replay_is_refused,
    skew_edges,
    unknown_or_unhinted_key_version,
    oversized_body,
    get_and_wrong_content_type,
    audit_row_per_answered_query,
);

async fn happy_path_every_status(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    for p in DEMO_PEOPLE {
        let req = Req::query(p.name, p.id_number);
        let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
        assert_eq!(r.status, 200, "{}: {:?}", p.name, r.json);
        assert_eq!(r.signed_by, Ok(1));
        assert_eq!(r.json["pension_status"], p.status, "{}", p.name);
        assert_eq!(r.header("Request-ID"), req.request_id.as_deref());
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("WxIns-Nonce").map(str::len), Some(32));
        assert_eq!(r.header("WxIns-Timestamp"), Some(NOW.to_string().as_str()));
    }
}

async fn response_fields_are_exact(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    // Opened: everything disclosed; a lower-case x in the ID is accepted and echoed as sent.
    let r = send(
        &svc,
        &gw.keys,
        Req::query("张三", "11010519491231002x").build(&gw.keys),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        r.json,
        serde_json::json!({
            "user_true_name": "张三",
            "user_bank_phone_num": "13800000001",
            "user_identify_card_num": "11010519491231002x",
            "pension_bank_card_num": "6217000010000000001",
            "pension_create_time": "1700000000",
            "pension_status": 1
        })
    );
    // Closed: close time added.
    let r = send(
        &svc,
        &gw.keys,
        Req::query("李四", "440300198503151236").build(&gw.keys),
    )
    .await;
    assert_eq!(r.json["pension_close_time"], "1730000000");
    assert_eq!(r.json["pension_status"], 2);
    // Not opened / opened elsewhere: nothing of the bank's disclosed.
    for (name, id, status) in [
        ("王五", "310115199001014564", 3),
        ("赵六", "510107197811207892", 4),
    ] {
        let r = send(&svc, &gw.keys, Req::query(name, id).build(&gw.keys)).await;
        assert_eq!(
            r.json,
            serde_json::json!({"user_true_name": name, "user_bank_phone_num": "", "user_identify_card_num": id,
                "pension_bank_card_num": "", "pension_status": status})
        );
    }
}

async fn session_rules(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let with_session = |name: &str, id: &str, s: &str| {
        Req::body(
            serde_json::to_vec(&serde_json::json!({"session_id": s, "user_true_name": name,
            "user_identify_card_num": id, "corpno": "weibao"}))
            .unwrap(),
        )
    };
    let p = DEMO_PEOPLE[0];
    let r = send(
        &svc,
        &gw.keys,
        with_session(p.name, p.id_number, DEMO_SESSION_ID).build(&gw.keys),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // Unknown session.
    let r = send(
        &svc,
        &gw.keys,
        with_session(p.name, p.id_number, "nope").build(&gw.keys),
    )
    .await;
    assert_eq!((r.status, r.code()), (412, "SESSION_NOT_FOUND"));
    assert_eq!(r.signed_by, Ok(1));
    // The demo session belongs to 张三, not to 李四.
    let q = DEMO_PEOPLE[1];
    let r = send(
        &svc,
        &gw.keys,
        with_session(q.name, q.id_number, DEMO_SESSION_ID).build(&gw.keys),
    )
    .await;
    assert_eq!((r.status, r.code()), (412, "SESSION_NOT_FOUND"));
    // Expiry is exclusive: a session expiring exactly now is gone.
    let store = gw.state.accounts().store();
    store
        .insert_session(&BindingSession {
            session_id: "edge".into(),
            id_digest: None,
            created_at: NOW - 10,
            expires_at: NOW,
        })
        .await
        .unwrap();
    store
        .insert_session(&BindingSession {
            session_id: "live".into(),
            id_digest: None,
            created_at: NOW - 10,
            expires_at: NOW + 1,
        })
        .await
        .unwrap();
    let r = send(
        &svc,
        &gw.keys,
        with_session(p.name, p.id_number, "edge").build(&gw.keys),
    )
    .await;
    assert_eq!(r.code(), "SESSION_NOT_FOUND");
    let r = send(
        &svc,
        &gw.keys,
        with_session(p.name, p.id_number, "live").build(&gw.keys),
    )
    .await;
    assert_eq!(r.status, 200);
}

async fn name_mismatch(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let r = send(
        &svc,
        &gw.keys,
        Req::query("张四", DEMO_PEOPLE[0].id_number).build(&gw.keys),
    )
    .await;
    assert_eq!((r.status, r.code()), (412, "INVALID_USER_INFO"));
    assert_eq!(r.signed_by, Ok(1));
    assert!(
        !String::from_utf8_lossy(&r.body).contains("6217"),
        "no account data in errors"
    );
}

async fn invalid_parameters(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"{not json".to_vec()),
        ("json array", b"[]".to_vec()),
        ("missing corpno", br#"{"user_true_name":"A","user_identify_card_num":"11010519491231002X"}"#.to_vec()),
        ("wrong corpno", br#"{"user_true_name":"A","user_identify_card_num":"11010519491231002X","corpno":"x"}"#.to_vec()),
        ("missing name", br#"{"user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#.to_vec()),
        ("blank name", br#"{"user_true_name":"  ","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#.to_vec()),
        ("bad check digit", br#"{"user_true_name":"A","user_identify_card_num":"110105194912310021","corpno":"weibao"}"#.to_vec()),
        ("short id", br#"{"user_true_name":"A","user_identify_card_num":"1101051949","corpno":"weibao"}"#.to_vec()),
        ("bad date", br#"{"user_true_name":"A","user_identify_card_num":"110105194913310028","corpno":"weibao"}"#.to_vec()),
        ("id as number", br#"{"user_true_name":"A","user_identify_card_num":110105194912310021,"corpno":"weibao"}"#.to_vec()),
    ];
    for (what, body) in bodies {
        let r = send(&svc, &gw.keys, Req::body(body).build(&gw.keys)).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "INVALID_PARAMETERS"),
            "{what}: {:?}",
            r.json
        );
        assert_eq!(r.signed_by, Ok(1), "{what}");
        assert!(
            !r.json["message"]
                .as_str()
                .unwrap()
                .contains("11010519491231"),
            "{what}: message echoes the ID"
        );
    }
}

async fn header_errors(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let ok = || Req::query("张三", "11010519491231002X");
    // No Authorization.
    let r = send(&svc, &gw.keys, ok().build_with_auth(None)).await;
    assert_eq!((r.status, r.code()), (400, "PARAM_ERROR"));
    assert_eq!(r.signed_by, Ok(1));
    // Garbage Authorization.
    let r = send(
        &svc,
        &gw.keys,
        ok().build_with_auth(Some("nonsense".into())),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "PARAM_ERROR"));
    // Oversized Authorization.
    let r = send(
        &svc,
        &gw.keys,
        ok().build_with_auth(Some(format!("nonce={}", "a".repeat(5000)))),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "PARAM_ERROR"));
    // Missing / oversized Request-ID: refused, and no Request-ID echoed.
    let mut req = ok();
    req.request_id = None;
    let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
    assert_eq!((r.status, r.code()), (400, "PARAM_ERROR"));
    assert_eq!(r.header("Request-ID"), None);
    assert_eq!(r.signed_by, Ok(1));
    let mut req = ok();
    req.request_id = Some("r".repeat(65));
    let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
    assert_eq!((r.status, r.code()), (400, "PARAM_ERROR"));
    let mut req = ok();
    req.request_id = Some("r".repeat(64));
    assert_eq!(send(&svc, &gw.keys, req.build(&gw.keys)).await.status, 200);
}

async fn tampering_is_refused(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let base = || Req::query("张三", "11010519491231002X");
    // Signed one way, sent another.
    type Tamper = Box<dyn Fn(&mut Req)>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "body",
            Box::new(|r: &mut Req| {
                r.body = r
                    .body
                    .iter()
                    .map(|&b| if b == b'3' { b'4' } else { b })
                    .collect()
            }),
        ),
        ("body whitespace", Box::new(|r: &mut Req| r.body.push(b' '))),
        (
            "path",
            Box::new(|r: &mut Req| r.path = "/v1/pension/account/".into()),
        ),
        (
            "query",
            Box::new(|r: &mut Req| r.path = "/v1/pension/account?x=1".into()),
        ),
        ("timestamp", Box::new(|r: &mut Req| r.timestamp += 1)),
        ("nonce", Box::new(|r: &mut Req| r.nonce.push('a'))),
        ("method", Box::new(|r: &mut Req| r.method = "PUT")),
    ];
    for (what, tamper) in cases {
        let signed = base();
        let auth = signed.authorization(&gw.keys);
        let mut sent = Req {
            nonce: signed.nonce.clone(),
            ..base()
        };
        sent.body = signed.body.clone();
        tamper(&mut sent);
        // Re-attach the original signature, with the sent timestamp and nonce where they were tampered.
        let auth = auth
            .replace(
                &format!("timestamp=\"{}\"", signed.timestamp),
                &format!("timestamp=\"{}\"", sent.timestamp),
            )
            .replace(
                &format!("nonce=\"{}\"", signed.nonce),
                &format!("nonce=\"{}\"", sent.nonce),
            );
        let r = send(&svc, &gw.keys, sent.build_with_auth(Some(auth))).await;
        let want = if what == "method" {
            (405, "METHOD_NOT_ALLOWED")
        } else {
            (401, "SIGN_ERROR")
        };
        if what != "path" {
            assert_eq!((r.status, r.code()), want, "{what}: {:?}", r.json);
        } else {
            // A different path is another route: 404 (not the WeChat channel), never a 200.
            assert_ne!(r.status, 200, "{what}");
        }
    }
    // A query string that was signed is fine: bytes as received.
    let mut q = base();
    q.path = "/v1/pension/account?a=%20b&x=1".into();
    let r = send(&svc, &gw.keys, q.build(&gw.keys)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // Signed by a key the bank does not trust.
    let stranger = pension_gateway::client::WechatClient::new(
        pension_gateway::crypto::EngineKind::DEFAULT,
        &pension_gateway::crypto::SecretKey::generate(),
        Some(1),
        &gw.keys.bank_public(),
        b"1234567812345678",
    )
    .unwrap();
    let req = base();
    let auth = stranger
        .sign_request("POST", &req.path, &req.body, req.timestamp, &req.nonce)
        .unwrap()
        .authorization;
    let r = send(&svc, &gw.keys, req.build_with_auth(Some(auth))).await;
    assert_eq!((r.status, r.code()), (401, "SIGN_ERROR"));
    assert_eq!(r.signed_by, Ok(1));
}

async fn replay_is_refused(db: Db) {
    for extended in [false, true] {
        let Some(gw) = Gateway::start_with(db, |s| s.wechat.extended_auth_codes = extended).await
        else {
            return;
        };
        let svc = gw.service().await;
        let req = Req::query("张三", "11010519491231002X");
        assert_eq!(send(&svc, &gw.keys, req.build(&gw.keys)).await.status, 200);
        let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.code(),
            if extended {
                "NONCE_REPLAYED"
            } else {
                "SIGN_ERROR"
            }
        );
        assert!(r.json["message"].as_str().unwrap().contains("nonce"));
        assert_eq!(r.signed_by, Ok(1));
        // A forged request with a fresh nonce does not burn that nonce.
        let fresh = Req::query("张三", "11010519491231002X");
        let mut forged_auth = fresh.authorization(&gw.keys);
        forged_auth = forged_auth.replace("signature=\"M", "signature=\"N");
        let r = send(&svc, &gw.keys, fresh.build_with_auth(Some(forged_auth))).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            send(&svc, &gw.keys, fresh.build(&gw.keys)).await.status,
            200,
            "nonce must not be recorded by a forgery"
        );
    }
}

async fn skew_edges(db: Db) {
    let Some(gw) = Gateway::start_with(db, |s| s.wechat.extended_auth_codes = true).await else {
        return;
    };
    let svc = gw.service().await;
    for (offset, ok) in [
        (-300, true),
        (300, true),
        (-301, false),
        (301, false),
        (0, true),
    ] {
        let mut req = Req::query("张三", "11010519491231002X");
        req.timestamp = NOW + offset;
        let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
        if ok {
            assert_eq!(r.status, 200, "offset {offset}: {:?}", r.json);
        } else {
            assert_eq!(
                (r.status, r.code()),
                (401, "TIMESTAMP_EXPIRED"),
                "offset {offset}"
            );
            assert_eq!(r.signed_by, Ok(1));
        }
    }
}

async fn unknown_or_unhinted_key_version(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    // No version hint: every trusted key is tried.
    let mut req = Req::query("张三", "11010519491231002X");
    req.hint = false;
    assert_eq!(send(&svc, &gw.keys, req.build(&gw.keys)).await.status, 200);
    // A hint naming an unknown version is refused, not fallen through.
    let req = Req::query("张三", "11010519491231002X");
    let auth = req
        .authorization(&gw.keys)
        .replace("version=\"1\"", "version=\"7\"");
    let r = send(&svc, &gw.keys, req.build_with_auth(Some(auth))).await;
    assert_eq!((r.status, r.code()), (401, "SIGN_ERROR"));
    assert!(r.json["message"].as_str().unwrap().contains("version 7"));
}

async fn oversized_body(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let mut body = br#"{"corpno":"weibao","pad":""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    body.extend_from_slice(br#""}"#);
    let r = send(&svc, &gw.keys, Req::body(body).build(&gw.keys)).await;
    assert_eq!((r.status, r.code()), (400, "PARAM_ERROR"));
    assert!(r.json["message"].as_str().unwrap().contains("65536"));
    assert_eq!(r.signed_by, Ok(1));
    // Exactly at the limit is read (and then judged on its content).
    let mut body = r#"{"user_true_name":"张三","user_identify_card_num":"11010519491231002X","corpno":"weibao","pad":""#.as_bytes().to_vec();
    let fill = 64 * 1024 - body.len() - 2;
    body.extend(std::iter::repeat_n(b'a', fill));
    body.extend_from_slice(br#""}"#);
    assert_eq!(body.len(), 64 * 1024);
    let r = send(&svc, &gw.keys, Req::body(body).build(&gw.keys)).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

async fn get_and_wrong_content_type(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let mut req = Req::body(Vec::new());
    req.method = "GET";
    req.content_type = None;
    let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
    assert_eq!((r.status, r.code()), (405, "METHOD_NOT_ALLOWED"));
    assert_eq!(r.signed_by, Ok(1));
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = Req::query("张三", "11010519491231002X");
        req.content_type = ct;
        let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
        assert_eq!((r.status, r.code()), (400, "PARAM_ERROR"), "{ct:?}");
        assert_eq!(r.signed_by, Ok(1));
    }
    let mut req = Req::query("张三", "11010519491231002X");
    req.content_type = Some("application/json; charset=utf-8");
    assert_eq!(send(&svc, &gw.keys, req.build(&gw.keys)).await.status, 200);
}

async fn audit_row_per_answered_query(db: Db) {
    let Some(gw) = Gateway::start(db).await else {
        return;
    };
    let svc = gw.service().await;
    let store = gw.state.accounts().store();
    let ok = Req::query("张三", "11010519491231002X");
    let bad_name = Req::query("张四", "11010519491231002X");
    let unsigned = Req::query("张三", "11010519491231002X");
    send(&svc, &gw.keys, ok.build(&gw.keys)).await;
    send(&svc, &gw.keys, bad_name.build(&gw.keys)).await;
    send(&svc, &gw.keys, unsigned.build_with_auth(None)).await;
    let rows = store
        .audit_for_request(ok.request_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "OK");
    assert_eq!(rows[0].http_status, 200);
    assert_eq!(rows[0].bank_key_version, 1);
    assert_eq!(rows[0].wechat_key_version, Some(1));
    assert_eq!(rows[0].pension_status, Some(1));
    assert_eq!(
        rows[0].id_digest,
        Some(gw.state.accounts().digest("11010519491231002X"))
    );
    assert_eq!(rows[0].received_at_ms, NOW * 1000);
    let rows = store
        .audit_for_request(bad_name.request_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].outcome.as_str(), rows[0].http_status),
        ("INVALID_USER_INFO", 412)
    );
    // Unauthenticated requests are not audited (forgeries cannot fill the table); metrics count them.
    assert!(store
        .audit_for_request(unsigned.request_id.as_deref().unwrap())
        .await
        .unwrap()
        .is_empty());
    assert!(gw
        .state
        .metrics()
        .render()
        .contains("gateway_verify_failures_total{reason=\"header\"} 1"));
}
