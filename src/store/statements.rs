//! Point lookups and inserts. Each body is written once; `db_run!` expands it per backend.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{audit_from_tuple, AuditRow, AuditTuple, SessionRow};
use super::schema::{
    audit_undelivered as ud, binding_sessions as bs, pension_accounts as pa, query_audit as qa,
};
use super::{Account, AuditRecord, BindingSession, NewAudit, StatementError, Store, StoreError};

/// The columns of [`Account`] as stored, selected by name (`AccountRead::as_select()`), so the
/// column list and the row type cannot drift apart.
#[derive(Queryable, Selectable)]
#[diesel(table_name = pa)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
struct AccountRead {
    account_no: String,
    holder_name: String,
    phone: String,
    id_digest: Vec<u8>,
    status: i16,
    opened_at: Option<i64>,
    closed_at: Option<i64>,
}

/// The columns of [`BindingSession`] as stored, selected by name.
#[derive(Queryable, Selectable)]
#[diesel(table_name = bs)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
struct SessionRead {
    session_id: String,
    id_digest: Option<Vec<u8>>,
    created_at: i64,
    expires_at: i64,
}

/// A stored digest as 32 bytes (the schema cannot say the length).
fn digest(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| StatementError::Invalid("stored id_digest is not 32 bytes").into())
}

impl TryFrom<AccountRead> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRead) -> Result<Account, StoreError> {
        Ok(Account {
            account_no: r.account_no,
            holder_name: r.holder_name,
            phone: r.phone,
            id_digest: digest(r.id_digest)?,
            status: r.status,
            opened_at: r.opened_at,
            closed_at: r.closed_at,
        })
    }
}

impl TryFrom<SessionRead> for BindingSession {
    type Error = StoreError;
    fn try_from(r: SessionRead) -> Result<BindingSession, StoreError> {
        Ok(BindingSession {
            session_id: r.session_id,
            id_digest: r.id_digest.map(digest).transpose()?,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

impl Store {
    pub(super) async fn ping_inner(&self) -> Result<(), StoreError> {
        db_run!(self, conn => {
            diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>())
                .get_result::<i32>(conn)
                .await
                .map(|_| ())
                .map_err(StoreError::from)
        })
    }

    /// The account whose ID digest is `digest`, if any.
    pub async fn find_account_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<Account>, StoreError> {
        if let Some(readers) = &self.inner.readers {
            let row = readers.with(|c| {
                let q = pa::table
                    .filter(pa::id_digest.eq(&digest[..]))
                    .select(AccountRead::as_select());
                diesel::RunQueryDsl::first(q, c)
                    .optional()
                    .map_err(StoreError::from)
            })?;
            return row.map(Account::try_from).transpose();
        }
        let row: Option<AccountRead> = db_run!(self, conn => {
            pa::table
                .filter(pa::id_digest.eq(&digest[..]))
                .select(AccountRead::as_select())
                .first(conn)
                .await
                .optional()
                .map_err(StoreError::from)
        })?;
        row.map(Account::try_from).transpose()
    }

    /// The session `session_id` if it is still live at `now` (unix seconds): `expires_at > now`,
    /// so a session whose `expires_at == now` is already expired.
    pub async fn find_live_session(
        &self,
        session_id: &str,
        now: i64,
    ) -> Result<Option<BindingSession>, StoreError> {
        if let Some(readers) = &self.inner.readers {
            let row = readers.with(|c| {
                let q = bs::table
                    .filter(bs::session_id.eq(session_id))
                    .filter(bs::expires_at.gt(now))
                    .select(SessionRead::as_select());
                diesel::RunQueryDsl::first(q, c)
                    .optional()
                    .map_err(StoreError::from)
            })?;
            return row.map(BindingSession::try_from).transpose();
        }
        let row: Option<SessionRead> = db_run!(self, conn => {
            bs::table
                .filter(bs::session_id.eq(session_id))
                .filter(bs::expires_at.gt(now))
                .select(SessionRead::as_select())
                .first(conn)
                .await
                .optional()
                .map_err(StoreError::from)
        })?;
        row.map(BindingSession::try_from).transpose()
    }

    /// Records a session; a duplicate `session_id` is a [`StatementError::Duplicate`].
    pub async fn insert_session(&self, s: &BindingSession) -> Result<(), StoreError> {
        if s.session_id.is_empty() || s.session_id.chars().count() > 128 {
            return Err(StatementError::Invalid("session_id must be 1 to 128 characters").into());
        }
        let row = SessionRow::from(s);
        db_run!(self, conn => {
            diesel::insert_into(bs::table).values(&row).execute(conn).await.map(|_| ()).map_err(StoreError::from)
        })
    }

    /// Appends one audit row; returns once it is committed.
    ///
    /// Concurrent calls are grouped: one writer inserts every row waiting at that moment as one
    /// multi-row statement, and each call returns the result of its own batch (see
    /// `docs/decisions.md`, group commit). A failed batch fails every call in it and leaves none
    /// of its rows.
    pub async fn insert_audit(&self, a: &NewAudit) -> Result<(), StoreError> {
        if a.request_id.chars().count() > 64
            || a.outcome.chars().count() > 32
            || a.channel.chars().count() > 16
            || !(100..=999).contains(&a.http_status)
        {
            return Err(StatementError::Invalid(
                "request_id over 64, outcome over 32 or channel over 16 characters, or an HTTP \
                 status outside 100–999",
            )
            .into());
        }
        if let Some(w) = &self.inner.audit {
            return w.append(a.clone()).await;
        }
        let row = AuditRow::new(a, None);
        db_run!(self, conn => {
            diesel::insert_into(qa::table).values(&row).execute(conn).await.map(|_| ()).map_err(StoreError::from)
        })
    }

    /// All audit rows of `request_id`, oldest first.
    pub async fn audit_for_request(
        &self,
        request_id: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditTuple> = db_run!(self, conn => {
            qa::table
                .filter(qa::request_id.eq(request_id))
                .order(qa::id.asc())
                .select((
                    qa::request_id, qa::received_at_ms, qa::outcome, qa::http_status, qa::bank_key_version,
                    qa::wechat_key_version, qa::id_digest, qa::pension_status, qa::channel, qa::batch_id,
                    (qa::req_nonce, qa::req_timestamp, qa::req_digest, qa::req_signature),
                    (qa::resp_nonce, qa::resp_timestamp, qa::resp_digest, qa::resp_signature),
                    (qa::instance_id, qa::seq, qa::prev_hash, qa::leaf_hash),
                ))
                .load::<AuditTuple>(conn)
                .await
                .map_err(StoreError::from)
        })?;
        let mut records = rows
            .into_iter()
            .map(audit_from_tuple)
            .collect::<Result<Vec<_>, _>>()?;
        // A row of a batch in `audit_undelivered` committed, but its caller got a signed 503.
        let batches: Vec<Vec<u8>> = records
            .iter()
            .filter_map(|r| r.batch_id.map(|b| b.to_vec()))
            .collect();
        if !batches.is_empty() {
            let undelivered: Vec<Vec<u8>> = db_run!(self, conn => {
                ud::table
                    .filter(ud::batch_id.eq_any(batches.clone()))
                    .select(ud::batch_id)
                    .load::<Vec<u8>>(conn)
                    .await
                    .map_err(StoreError::from)
            })?;
            for r in &mut records {
                r.undelivered = r
                    .batch_id
                    .is_some_and(|b| undelivered.iter().any(|u| u.as_slice() == b.as_slice()));
            }
        }
        Ok(records)
    }

    /// Number of audit rows.
    pub async fn count_audit(&self) -> Result<i64, StoreError> {
        db_run!(self, conn => {
            qa::table.count().get_result::<i64>(conn).await.map_err(StoreError::from)
        })
    }

    /// Number of accounts.
    pub async fn count_accounts(&self) -> Result<i64, StoreError> {
        db_run!(self, conn => {
            pa::table.count().get_result::<i64>(conn).await.map_err(StoreError::from)
        })
    }
}

/// The one hook the test kit (`crates/testkit`) needs inside the store: SQL on the store's own
/// pooled connection (an in-memory SQLite database is reachable no other way). Compiled only
/// with the `test-hooks` feature, which only the test kit turns on.
#[cfg(feature = "test-hooks")]
impl Store {
    #[doc(hidden)]
    /// Runs `sql` (one or more statements, no results) on a pooled connection.
    pub async fn execute_sql_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        use diesel_async::SimpleAsyncConnection;
        db_run!(self, conn => {
            conn.batch_execute(sql).await.map_err(StoreError::from)
        })
    }
}
