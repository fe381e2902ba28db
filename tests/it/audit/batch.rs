//! Group commit of audit rows through the whole request path, on a SQLite file and (with
//! `TEST_MYSQL_URL`) MySQL: a batch whose INSERT fails answers each of its requests with the
//! signed 503 of an unavailable audit log and leaves none of its rows; every 200 has exactly one
//! row; batches without the fault are intact.

use crate::common::{self, send, Db, Gateway, Req};
use testkit as testing;

async fn gateway(db: Db, dir: &tempfile::TempDir) -> Option<Gateway> {
    let tdb = match db {
        Db::Sqlite => common::sqlite_file_db(dir.path()).await,
        Db::Mysql | Db::MysqlTls => common::test_db(db).await?,
    };
    // One identity queried ~50 times: no per-identity limit in the way.
    Some(Gateway::start_on(tdb, |s| s.limits.per_identity_per_minute = 0).await)
}

fn query(request_id: String) -> Req {
    let mut r = Req::query("张三", "11010519491231002X");
    r.request_id = Some(request_id);
    r
}

async fn failed_batch_answers_signed_503(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(gw) = gateway(db, &dir).await else {
        return;
    };
    let store = gw.state.accounts().store().clone();
    testing::execute_sql(&store, testing::poison_audit_trigger_sql(&store))
        .await
        .expect("install the fault trigger");
    let svc = gw.service().await;

    // Alone: a poisoned request is its own batch; the ones around it are untouched.
    let before = send(&svc, &gw.keys, query("before".into()).build(&gw.keys)).await;
    assert_eq!(before.status, 200);
    let poisoned = send(&svc, &gw.keys, query("poison-alone".into()).build(&gw.keys)).await;
    assert_eq!(poisoned.status, 503, "{:?}", poisoned.json);
    assert_eq!(poisoned.code(), "SYSTEM_ERROR");
    assert_eq!(poisoned.signed_by, Ok(1), "the 503 is signed");
    let after = send(&svc, &gw.keys, query("after".into()).build(&gw.keys)).await;
    assert_eq!(after.status, 200);

    // Together: requests in flight at once share batches; a batch with a poisoned row fails
    // whole, so its clean requests answer 503 too, and nothing of it is stored.
    let ids: Vec<String> = (0..48)
        .map(|i| {
            if i % 12 == 5 {
                format!("poison-{i}")
            } else {
                format!("row-{i}")
            }
        })
        .collect();
    let reqs: Vec<_> = ids.iter().map(|id| query(id.clone())).collect();
    let answers = futures_util::future::join_all(
        reqs.iter().map(|r| send(&svc, &gw.keys, r.build(&gw.keys))),
    )
    .await;
    let mut ok = 2;
    for (id, resp) in ids.iter().zip(&answers) {
        assert_eq!(resp.signed_by, Ok(1), "{id}: every answer is signed");
        let rows = store.audit_for_request(id).await.unwrap();
        match resp.status {
            200 => {
                assert!(!id.starts_with("poison"), "{id} answered 200");
                assert_eq!(rows.len(), 1, "{id}: a 200 has exactly one audit row");
                ok += 1;
            }
            503 => {
                assert_eq!(resp.code(), "SYSTEM_ERROR", "{id}");
                assert!(rows.is_empty(), "{id}: a failed batch leaves no row");
            }
            other => panic!("{id}: unexpected status {other}"),
        }
    }
    for id in ["before", "after"] {
        assert_eq!(store.audit_for_request(id).await.unwrap().len(), 1, "{id}");
    }
    assert!(store
        .audit_for_request("poison-alone")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count_audit().await.unwrap(), ok);
    // The writer reports its batches.
    let metrics = gw.state.metrics().render();
    assert!(
        metrics.contains("gateway_audit_batch_rows_count"),
        "batch histogram exported"
    );
    // No witness append failed; the counter is exported at 0 from the start.
    assert!(
        metrics.contains("gateway_audit_witness_failures_total 0"),
        "witness failure counter exported at 0"
    );
}

mod sqlite {
    #[actix_web::test]
    async fn failed_batch_answers_signed_503() {
        super::failed_batch_answers_signed_503(super::Db::Sqlite).await
    }
}

mod mysql {
    #[actix_web::test]
    async fn failed_batch_answers_signed_503() {
        super::failed_batch_answers_signed_503(super::Db::Mysql).await
    }
}
