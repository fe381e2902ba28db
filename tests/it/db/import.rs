//! `accounts import`: the CSV extract reader, its validation and the batched upsert, against
//! SQLite in memory always and MySQL/MariaDB when `TEST_MYSQL_URL` is set (then an unreachable
//! server fails the test; it never skips).

use crate::common;

use common::Db;
use pension_gateway::accounts::import::{import_csv, ImportError, ImportProgress, ImportReport};
use pension_gateway::accounts::AccountDirectory;
use pension_gateway::config::DEMO_PEPPER_HEX;
use proptest::prelude::*;

const NOW: i64 = 1_764_000_000;
const HEADER: &str = "account_no,holder_name,phone,id_number,status,opened_at,closed_at\n";
// Fictional people with valid check digits (the demo set).
const ID_A: &str = "11010519491231002X";
const ID_B: &str = "440300198503151236";
const ID_C: &str = "310115199001014564";
const ID_D: &str = "510107197811207892";

fn directory(db: &common::TestDb) -> AccountDirectory {
    let pepper = zeroize::Zeroizing::new(hex::decode(DEMO_PEPPER_HEX).unwrap());
    AccountDirectory::new(db.store.clone(), pepper)
}

async fn run(
    dir: &AccountDirectory,
    csv: &[u8],
    batch: usize,
) -> Result<ImportReport, ImportError> {
    let mut progress = Vec::new();
    let r = import_csv(csv, dir, batch, NOW, false, &mut |p: ImportProgress| {
        progress.push(p)
    })
    .await;
    if let Ok(rep) = &r {
        let last = progress.last().expect("progress reported at the end");
        assert_eq!(last.rows_read, rep.rows);
        assert_eq!(last.bytes_read, csv.len() as u64);
        assert!(progress
            .windows(2)
            .all(|w| w[0].bytes_read <= w[1].bytes_read));
        // Every row is accounted for exactly once.
        assert_eq!(rep.rows, rep.valid + rep.rejected.len() as u64);
        assert_eq!(rep.valid, rep.inserted + rep.updated);
    }
    r
}

fn lines(rep: &ImportReport) -> Vec<u64> {
    rep.rejected.iter().map(|r| r.0).collect()
}

async fn count(dir: &AccountDirectory) -> i64 {
    dir.store().count_accounts().await.unwrap()
}

async fn find(dir: &AccountDirectory, id: &str) -> Option<pension_gateway::store::Account> {
    dir.store()
        .find_account_by_digest(&dir.digest(id))
        .await
        .unwrap()
}

fn good_file() -> String {
    format!(
        "{HEADER}\
         A001,张三,13800000001,{ID_A},1,1700000000,\n\
         A002,李四,+8613800000002,{ID_B},2,1700000000,1730000000\n\
         A003,王五,,{ID_C},3,,\n\
         A004,赵六,13800000004,{},4,1700000000,\n",
        ID_D.to_lowercase()
    )
}

// ------------------------------------------------------------------------------------------------
// Scenarios, each run on every backend

async fn happy_path(db: Db) {
    let Some(t) = common::test_db(db).await else {
        return;
    };
    let dir = directory(&t);
    let rep = run(&dir, good_file().as_bytes(), 2).await.unwrap();
    assert_eq!(
        (rep.rows, rep.inserted, rep.updated, rep.batches, rep.lines),
        (4, 4, 0, 2, 5)
    );
    assert!(rep.rejected.is_empty(), "{:?}", rep.rejected);
    assert_eq!(count(&dir).await, 4);
    let b = find(&dir, ID_B).await.unwrap();
    assert_eq!(b.account_no, "A002");
    assert_eq!(b.holder_name, "李四");
    assert_eq!(b.phone, "+8613800000002");
    assert_eq!(
        (b.status, b.opened_at, b.closed_at),
        (2, Some(1_700_000_000), Some(1_730_000_000))
    );
    let c = find(&dir, ID_C).await.unwrap();
    assert_eq!((c.phone.as_str(), c.opened_at), ("", None));
    // A lower-case x is normalised before digesting.
    assert_eq!(find(&dir, ID_D).await.unwrap().account_no, "A004");
}

async fn rerun_is_idempotent(db: Db) {
    let Some(t) = common::test_db(db).await else {
        return;
    };
    let dir = directory(&t);
    let file = good_file();
    let first = run(&dir, file.as_bytes(), 3).await.unwrap();
    assert_eq!((first.inserted, first.updated), (4, 0));
    let second = run(&dir, file.as_bytes(), 3).await.unwrap();
    assert_eq!((second.inserted, second.updated), (0, 4));
    assert!(second.rejected.is_empty());
    assert_eq!(count(&dir).await, 4);
}

async fn duplicates_last_wins(db: Db) {
    let Some(t) = common::test_db(db).await else {
        return;
    };
    let dir = directory(&t);
    // A001 on lines 2, 4 (same batch) and 6 (next batch): line 6 wins.
    let file = format!(
        "{HEADER}\
         A001,张一,13800000001,{ID_A},1,,\n\
         A002,李四,13800000002,{ID_B},1,,\n\
         A001,张二,13800000001,{ID_A},1,,\n\
         A003,王五,13800000003,{ID_C},1,,\n\
         A001,张三,13800000001,{ID_A},2,,1730000000\n"
    );
    let rep = run(&dir, file.as_bytes(), 3).await.unwrap();
    assert_eq!(lines(&rep), vec![2, 4], "{:?}", rep.rejected);
    assert!(
        rep.rejected[0].1.contains("line 4"),
        "{}",
        rep.rejected[0].1
    );
    assert!(
        rep.rejected[1].1.contains("line 6"),
        "{}",
        rep.rejected[1].1
    );
    assert_eq!((rep.inserted, rep.updated), (3, 0));
    assert_eq!(count(&dir).await, 3);
    let a = find(&dir, ID_A).await.unwrap();
    assert_eq!((a.holder_name.as_str(), a.status), ("张三", 2));

    // The same ID number for two account numbers: the first one stays, the second is refused.
    let file = format!("{HEADER}B001,张三,1,{ID_A},1,,\n");
    let rep = run(&dir, file.as_bytes(), 10).await.unwrap();
    assert_eq!(lines(&rep), vec![2]);
    assert!(rep.rejected[0].1.contains("another account_no"));
    let file = format!("{HEADER}C001,甲,1,{ID_D},1,,\nC002,乙,1,{ID_D},1,,\n");
    let rep = run(&dir, file.as_bytes(), 10).await.unwrap();
    assert_eq!(lines(&rep), vec![3]);
    assert!(
        rep.rejected[0].1.contains("line 2"),
        "{}",
        rep.rejected[0].1
    );
}

async fn bad_rows_reported_good_rows_land(db: Db) {
    let Some(t) = common::test_db(db).await else {
        return;
    };
    let dir = directory(&t);
    let long_name = "名".repeat(65);
    let bad_check = "110105194912310021"; // check digit should be X
    let file = format!(
        "{HEADER}\
         A001,张三,13800000001,{ID_A},1,,\n\
         A002,李四,13800000002,{bad_check},1,,\n\
         A003,王五,13800000003,{ID_C},5,,\n\
         \n\
         A004,,13800000004,{ID_D},1,,\n\
         A005,{long_name},13800000005,{ID_B},1,,\n\
         A006,赵六,13800000006,{ID_D},1,,1730000000\n\
         A007,钱七,1380000abcd,{ID_D},1,,\n\
         A008,孙八,13800000008,{ID_D},1,,\n"
    );
    let rep = run(&dir, file.as_bytes(), 2).await.unwrap();
    let expect: Vec<(u64, &str)> = vec![
        (3, "id_number check digit does not match"),
        (4, "status 5 is not one of 1, 2, 3, 4"),
        (6, "missing value for holder_name"),
        (7, "holder_name is longer than 64 characters"),
        (8, "closed_at is only allowed with status 2 (closed)"),
        (
            9,
            "phone must be digits with an optional leading +, at most 20 characters",
        ),
    ];
    let got: Vec<(u64, &str)> = rep.rejected.iter().map(|(l, r)| (*l, r.as_str())).collect();
    assert_eq!(got, expect);
    assert_eq!((rep.rows, rep.inserted), (8, 2));
    assert_eq!(count(&dir).await, 2);
    assert_eq!(find(&dir, ID_D).await.unwrap().account_no, "A008");
    // No reason carries a value from the file.
    for (_, reason) in &rep.rejected {
        for secret in [
            bad_check,
            "李四",
            "王五",
            ID_D,
            "13800000006",
            "1380000abcd",
            "A00",
        ] {
            assert!(!reason.contains(secret), "reason leaks data: {reason}");
        }
    }
}

async fn bom_crlf_quotes_and_column_order(db: Db) {
    let Some(t) = common::test_db(db).await else {
        return;
    };
    let dir = directory(&t);
    let mut file = b"\xEF\xBB\xBF".to_vec();
    file.extend_from_slice(
        format!(
            "status,id_number , closed_at,holder_name,account_no,opened_at,phone,extra\r\n\
             1,{ID_A},,\"张三, Jr.\",A001,1700000000,13800000001,ignored\r\n\
             \r\n\
             2 ,  {ID_B}  ,1730000000,\"李\"\"四\",\"A002\", 1700000000 ,13800000002  ,\r\n\
             1,{ID_C},,\"王\r\n五\",A003,,,\r\n\
             3,{ID_D},,赵六 ,A004,,,\r\n"
        )
        .as_bytes(),
    );
    let rep = run(&dir, &file, 1000).await.unwrap();
    // The multi-line name is refused (control characters) and reported on the line it starts.
    assert_eq!(
        rep.rejected,
        vec![(5, "holder_name contains control characters".to_string())]
    );
    assert_eq!((rep.rows, rep.inserted), (4, 3));
    let a = find(&dir, ID_A).await.unwrap();
    assert_eq!(
        (a.account_no.as_str(), a.holder_name.as_str()),
        ("A001", "张三, Jr.")
    );
    let b = find(&dir, ID_B).await.unwrap();
    assert_eq!(
        (b.holder_name.as_str(), b.phone.as_str(), b.status),
        ("李\"四", "13800000002", 2)
    );
    assert_eq!(b.closed_at, Some(1_730_000_000));
    assert_eq!(find(&dir, ID_D).await.unwrap().holder_name, "赵六");
}

async fn header_errors_and_empty_files(db: Db) {
    let Some(t) = common::test_db(db).await else {
        return;
    };
    let dir = directory(&t);
    let e = run(
        &dir,
        b"account_no,holder_name,phone,id_number,opened_at\nA1,x,1,y,\n",
        10,
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ImportError::Header(_)));
    assert!(
        msg.contains("missing required column(s): status, closed_at"),
        "{msg}"
    );
    let e = run(&dir, b"", 10).await.unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = run(&dir, b"\xEF\xBB\xBF\r\n\r\n", 10).await.unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = run(
        &dir,
        format!("{},status\n", HEADER.trim_end()).as_bytes(),
        10,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("more than once"), "{e}");
    // A header alone is a valid, empty extract.
    let rep = run(&dir, HEADER.as_bytes(), 10).await.unwrap();
    assert_eq!((rep.rows, rep.inserted, rep.batches), (0, 0, 0));
    assert_eq!(count(&dir).await, 0);
}

async fn dry_run_writes_nothing(db: Db) {
    let Some(t) = common::test_db(db).await else {
        return;
    };
    let dir = directory(&t);
    let file = format!("{}A009,x,1,{ID_A},9,,\n", good_file());
    let rep = import_csv(file.as_bytes(), &dir, 2, NOW, true, &mut |_| {})
        .await
        .unwrap();
    assert!(rep.dry_run);
    assert_eq!(
        (rep.rows, rep.valid, rep.inserted, rep.batches),
        (5, 4, 0, 0)
    );
    assert_eq!(lines(&rep), vec![6]);
    assert_eq!(count(&dir).await, 0);
}

/// A database failure aborts with how many batches were committed (here: a store whose
/// migrations were never run, so the first batch fails).
#[tokio::test]
async fn database_failure_reports_committed_batches() {
    let bare = pension_gateway::store::Store::open("sqlite::memory:", Default::default())
        .await
        .unwrap();
    let pepper = zeroize::Zeroizing::new(hex::decode(DEMO_PEPPER_HEX).unwrap());
    let dir = AccountDirectory::new(bare, pepper);
    let e = import_csv(good_file().as_bytes(), &dir, 2, NOW, false, &mut |_| {})
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            ImportError::Store {
                batches_committed: 0,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("after 0 committed batch(es)") && msg.contains("re-running"),
        "{msg}"
    );
}

macro_rules! on_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $( #[tokio::test] async fn $scenario() { super::$scenario(Db::Sqlite).await; } )*
        }
        mod mysql {
            use super::*;
            $( #[tokio::test] async fn $scenario() { super::$scenario(Db::Mysql).await; } )*
        }
        mod mysql_tls {
            use super::*;
            $( #[tokio::test] async fn $scenario() { super::$scenario(Db::MysqlTls).await; } )*
        }
    };
}

on_backends!(
    happy_path,
    rerun_is_idempotent,
    duplicates_last_wins,
    bad_rows_reported_good_rows_land,
    bom_crlf_quotes_and_column_order,
    header_errors_and_empty_files,
    dry_run_writes_nothing,
);

// ------------------------------------------------------------------------------------------------
// Arbitrary bytes never panic (dry run: parsing and validation only).

async fn dry_run_bytes(input: &[u8], batch: usize) -> Result<ImportReport, ImportError> {
    let store = pension_gateway::store::Store::open("sqlite::memory:", Default::default())
        .await
        .unwrap();
    let pepper = zeroize::Zeroizing::new(hex::decode(DEMO_PEPPER_HEX).unwrap());
    let dir = AccountDirectory::new(store, pepper);
    import_csv(input, &dir, batch, NOW, true, &mut |_| {}).await
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        with_header in any::<bool>(),
        batch in 1usize..5,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut input = if with_header { HEADER.as_bytes().to_vec() } else { Vec::new() };
        input.extend_from_slice(&body);
        let r = rt.block_on(dry_run_bytes(&input, batch));
        if let Ok(rep) = r {
            prop_assert_eq!(rep.rows, rep.valid + rep.rejected.len() as u64);
            prop_assert!(rep.rejected.windows(2).all(|w| w[0].0 <= w[1].0));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Two imports of overlapping extracts at the same moment on MySQL (two operators, or two
// instances seeding): lock conflicts are retried, both succeed, and the table ends up exactly as
// after one import of the union.

/// A valid fictional resident ID number, distinct for each `n` < 1000 · 28.
fn id_number(n: usize) -> String {
    let body = format!(
        "110105{}{:02}{:02}{:03}",
        1960 + n / 1000 % 40,
        1 + n / 28 % 12,
        1 + n % 28,
        n % 1000
    );
    let check = pension_gateway::accounts::identity::check_char(body.as_bytes()).unwrap();
    format!("{body}{}", check as char)
}

fn extract(rows: impl Iterator<Item = usize>) -> String {
    let mut s = HEADER.to_owned();
    for n in rows {
        s.push_str(&format!(
            "C{n:05},持有人{n},1390000{n:04},{},1,1700000000,\n",
            id_number(n)
        ));
    }
    s
}

#[tokio::test]
async fn two_simultaneous_overlapping_imports_equal_one_import() {
    const N: usize = 600;
    let Some(t) = common::test_db(Db::Mysql).await else {
        return;
    };
    let Some(reference) = common::test_db(Db::Mysql).await else {
        return;
    };
    // A: rows 0..400 in order; B: rows 200..600 in reverse order (opposite lock order on the
    // overlap, the classic deadlock). Several rounds, each on a fresh table state.
    // Retries are logged; count them (thread-local subscriber: this test runs on one thread).
    let retries = RetryCount::default();
    let sink = retries.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let a = extract(0..400);
    let b = extract((200..N).rev());
    for round in 0..3 {
        if round > 0 {
            testing_clear(&t).await;
        }
        // Both run at once on their own pooled connections (the futures interleave at every
        // database round trip, so their transactions overlap on the server).
        let (da, db) = (directory(&t), directory(&t));
        let (ra, rb) = tokio::join!(run(&da, a.as_bytes(), 50), run(&db, b.as_bytes(), 50));
        let (ra, rb) = (ra.expect("import A"), rb.expect("import B"));
        assert!(
            ra.rejected.is_empty() && rb.rejected.is_empty(),
            "{ra:?} {rb:?}"
        );
        assert_eq!(count(&directory(&t)).await, N as i64);
    }
    // Whether the rounds collided is up to the server's timing; report it, do not assert it.
    eprintln!(
        "note: {} transaction retries after lock conflicts in 3 rounds",
        retries.lines("lost a lock conflict")
    );
    // The same as one import of the union.
    let union = extract(0..N);
    let one = run(&directory(&reference), union.as_bytes(), 50)
        .await
        .unwrap();
    assert_eq!(one.inserted, N as u64);
    let (dt, dr) = (directory(&t), directory(&reference));
    for n in 0..N {
        let id = id_number(n);
        let (x, y) = (find(&dt, &id).await.unwrap(), find(&dr, &id).await.unwrap());
        assert_eq!(
            (
                &x.account_no,
                &x.holder_name,
                &x.phone,
                x.status,
                x.opened_at,
                x.closed_at
            ),
            (
                &y.account_no,
                &y.holder_name,
                &y.phone,
                y.status,
                y.opened_at,
                y.closed_at
            ),
        );
    }
}

/// Empties the accounts table between rounds.
async fn testing_clear(t: &common::TestDb) {
    testkit::mysql_exec(
        t.url.as_deref().unwrap(),
        None,
        "DELETE FROM pension_accounts",
    )
    .await
    .unwrap();
}

/// Log output of the concurrent-import test.
#[derive(Clone, Default)]
struct RetryCount(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl RetryCount {
    fn lines(&self, needle: &str) -> usize {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes).matches(needle).count()
    }
}

impl std::io::Write for RetryCount {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
