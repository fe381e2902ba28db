//! Demo accounts: fictional people with valid-format ID numbers, one per pension status, so a
//! newcomer (and the test suite) can exercise every answer. Seeded only in demo mode or by
//! `accounts seed-demo`.

use super::AccountDirectory;
use crate::store::{BindingSession, NewAccount, StatementError, StoreError};

/// A fictional person of the demo data set.
#[derive(Debug, Clone, Copy)]
pub struct DemoPerson {
    /// Name.
    pub name: &'static str,
    /// ID number (valid format and check digit, fictional).
    pub id_number: &'static str,
    /// Expected `pension_status` in the answer.
    pub status: i32,
    /// Account number, if the bank holds an account row.
    pub account_no: Option<&'static str>,
    /// Reserved phone, if the bank holds an account row.
    pub phone: Option<&'static str>,
}

/// The demo people: statuses 1, 2, 3 (no row), 4.
pub const DEMO_PEOPLE: [DemoPerson; 4] = [
    DemoPerson {
        name: "张三",
        id_number: "11010519491231002X",
        status: 1,
        account_no: Some("6217000010000000001"),
        phone: Some("13800000001"),
    },
    DemoPerson {
        name: "李四",
        id_number: "440300198503151236",
        status: 2,
        account_no: Some("6217000010000000002"),
        phone: Some("13800000002"),
    },
    DemoPerson {
        name: "王五",
        id_number: "310115199001014564",
        status: 3,
        account_no: None,
        phone: None,
    },
    DemoPerson {
        name: "赵六",
        id_number: "510107197811207892",
        status: 4,
        account_no: Some("6217000010000000004"),
        phone: Some("13800000004"),
    },
];

/// A live demo session bound to 张三.
pub const DEMO_SESSION_ID: &str = "demo-session-0001";

/// Inserts or refreshes the demo accounts and session. Idempotent.
pub async fn seed_demo(dir: &AccountDirectory, now: i64) -> Result<usize, StoreError> {
    let rows: Vec<NewAccount> = DEMO_PEOPLE
        .iter()
        .filter_map(|p| {
            Some(NewAccount {
                account_no: p.account_no?.to_string(),
                holder_name: p.name.to_string(),
                phone: p.phone?.to_string(),
                id_digest: dir.digest(p.id_number),
                status: p.status as i16,
                opened_at: Some(1_700_000_000),
                closed_at: (p.status == 2).then_some(1_730_000_000),
                updated_at: now,
            })
        })
        .collect();
    let n = rows.len();
    dir.store().upsert_accounts(&rows).await?;
    let session = BindingSession {
        session_id: DEMO_SESSION_ID.to_string(),
        id_digest: Some(dir.digest(DEMO_PEOPLE[0].id_number)),
        created_at: now,
        expires_at: now + 10 * 365 * 86_400,
    };
    if dir
        .store()
        .find_live_session(DEMO_SESSION_ID, now)
        .await?
        .is_none()
    {
        if let Err(e) = dir.store().insert_session(&session).await {
            // Another instance seeding at the same moment inserted it first: that is the
            // wanted end state, not an error.
            let inserted_by_other =
                matches!(&e, StoreError::Statement(StatementError::Duplicate { .. }))
                    && dir
                        .store()
                        .find_live_session(DEMO_SESSION_ID, now)
                        .await?
                        .is_some();
            if !inserted_by_other {
                return Err(e);
            }
        }
    }
    Ok(n)
}
