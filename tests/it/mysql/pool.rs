//! The MySQL pool hands out a connection without a `SELECT 1` round trip when it was used within
//! `database.idle_check_ms`, checks one idle for longer (every one with 0), and never hands out
//! again a connection whose statement failed. The server side is played by `KILL CONNECTION USER`, which closes every
//! connection of the store's own account. Needs `TEST_MYSQL_URL` (an account that may create
//! users); unset: a note and no test.

use crate::common;

use std::time::Duration;

use pension_gateway::store::{Store, StoreError, StoreOptions};
use testkit as testing;

async fn lookup(store: &Store) -> Result<(), StoreError> {
    store.find_account_by_digest(&[7u8; 32]).await.map(|a| {
        assert!(a.is_none(), "the test database has no accounts");
    })
}

#[actix_web::test]
async fn broken_connections_are_dropped_and_idle_ones_checked() {
    let Some(db) = common::test_db(common::Db::Mysql).await else {
        eprintln!("note: TEST_MYSQL_URL unset; MySQL pool test not run");
        return;
    };
    let admin_url = db.url.clone().unwrap();
    let (account, user_url) = common::temp_mysql_user(&admin_url, "pg_pool_", |db, who| {
        format!("GRANT SELECT ON `{db}`.* TO {who};")
    })
    .await;
    let user = account.user.clone();
    let kill = format!("KILL CONNECTION USER '{user}'");

    // One pooled connection, so the connection killed is the one the next lookup gets.
    let store = Store::open(
        &user_url,
        StoreOptions {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            create_if_missing: false,
        },
    )
    .await
    .expect("open as the test account");
    lookup(&store).await.expect("first lookup");

    // Killed while "recently used" (an idle-check threshold of an hour, so however slow this
    // machine is the connection counts as fresh): handed out unchecked, so this one lookup
    // fails — and the connection is dropped, so the next lookup opens a fresh one instead of
    // failing again.
    store.set_idle_check(Duration::from_secs(3600));
    testing::mysql_exec(&admin_url, None, &kill)
        .await
        .expect("kill the store's connection");
    let e = lookup(&store)
        .await
        .expect_err("a recently used connection is not checked");
    assert!(
        matches!(e, StoreError::Unavailable(_) | StoreError::Statement(_)),
        "{e:?}"
    );
    for round in 0..3 {
        lookup(&store)
            .await
            .unwrap_or_else(|e| panic!("lookup {round} after the failure: {e:?}"));
    }

    // Killed, then idle for longer than the threshold: the checkout's `SELECT 1` finds it dead
    // and opens a fresh one; the caller sees no error.
    store.set_idle_check(Duration::from_millis(200));
    testing::mysql_exec(&admin_url, None, &kill)
        .await
        .expect("kill the store's connection");
    tokio::time::sleep(Duration::from_millis(500)).await;
    lookup(&store)
        .await
        .expect("an idle dead connection is replaced at checkout");
    lookup(&store).await.expect("and the new one is kept");

    // Threshold 0: every checkout is checked, so a connection killed right after use is
    // replaced without an error too (deadpool's default behaviour, one round trip per query).
    store.set_idle_check(Duration::ZERO);
    for round in 0..3 {
        testing::mysql_exec(&admin_url, None, &kill)
            .await
            .expect("kill the store's connection");
        lookup(&store)
            .await
            .unwrap_or_else(|e| panic!("round {round}: a checked checkout failed: {e:?}"));
    }
}
