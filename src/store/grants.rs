//! Open-platform grants (access tokens and tickets) in the shared database, so every instance
//! sees every grant. Issuing is one INSERT; consuming a user ticket is one conditional UPDATE
//! whose affected-row count decides the single winner across instances.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::op_grants as og;
use super::{StatementError, Store, StoreError};
use crate::partners::open_platform::{GrantKind, GrantRecord};

type GrantTuple = (
    String,
    String,
    String,
    i32,
    i64,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    Option<String>,
);

#[derive(Insertable)]
#[diesel(table_name = og)]
struct GrantRow<'a> {
    id: &'a str,
    app_id: &'a str,
    kind: &'a str,
    secret_version: i32,
    issued_at_ms: i64,
    expires_at_ms: i64,
    used_at_ms: Option<i64>,
    user_ref: Option<&'a [u8]>,
    parent_id: Option<&'a str>,
}

fn from_tuple(t: GrantTuple) -> Result<GrantRecord, StoreError> {
    let kind =
        GrantKind::parse(&t.2).ok_or(StatementError::Invalid("op_grants.kind is unknown"))?;
    let user_ref = match t.7 {
        None => None,
        Some(v) => Some(
            <[u8; 32]>::try_from(v.as_slice())
                .map_err(|_| StatementError::Invalid("op_grants.user_ref is not 32 bytes"))?,
        ),
    };
    Ok(GrantRecord {
        id: t.0,
        app_id: t.1,
        kind,
        secret_version: u32::try_from(t.3)
            .map_err(|_| StatementError::Invalid("op_grants.secret_version is negative"))?,
        issued_at_ms: t.4,
        expires_at_ms: t.5,
        used_at_ms: t.6,
        user_ref,
        parent_id: t.8,
    })
}

macro_rules! grant_columns {
    () => {
        (
            og::id,
            og::app_id,
            og::kind,
            og::secret_version,
            og::issued_at_ms,
            og::expires_at_ms,
            og::used_at_ms,
            og::user_ref,
            og::parent_id,
        )
    };
}

impl Store {
    /// Records an issued grant.
    pub async fn insert_grant(&self, g: &GrantRecord) -> Result<(), StoreError> {
        let row = GrantRow {
            id: &g.id,
            app_id: &g.app_id,
            kind: g.kind.as_str(),
            secret_version: i32::try_from(g.secret_version)
                .map_err(|_| StatementError::Invalid("secret version too large"))?,
            issued_at_ms: g.issued_at_ms,
            expires_at_ms: g.expires_at_ms,
            used_at_ms: g.used_at_ms,
            user_ref: g.user_ref.as_ref().map(|r| r.as_slice()),
            parent_id: g.parent_id.as_deref(),
        };
        db_run!(self, conn => {
            diesel::insert_into(og::table).values(&row).execute(conn).await.map(|_| ()).map_err(StoreError::from)
        })
    }

    /// The grant with `id`, if any.
    pub async fn grant_by_id(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row: Option<GrantTuple> = db_run!(self, conn => {
            og::table
                .filter(og::id.eq(id))
                .select(grant_columns!())
                .first::<GrantTuple>(conn)
                .await
                .optional()
                .map_err(StoreError::from)
        })?;
        row.map(from_tuple).transpose()
    }

    /// The chain of `kind` grants of `app_id` under secret `secret_version` that have not
    /// expired at `now_ms` and were issued at or before it, in issue order.
    pub async fn grant_chain(
        &self,
        app_id: &str,
        kind: GrantKind,
        secret_version: u32,
        now_ms: i64,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let version = i32::try_from(secret_version).unwrap_or(i32::MAX);
        let rows: Vec<GrantTuple> = db_run!(self, conn => {
            og::table
                .filter(og::app_id.eq(app_id))
                .filter(og::kind.eq(kind.as_str()))
                .filter(og::secret_version.eq(version))
                .filter(og::expires_at_ms.gt(now_ms))
                .filter(og::issued_at_ms.le(now_ms))
                .order((og::issued_at_ms.asc(), og::id.asc()))
                .select(grant_columns!())
                .load::<GrantTuple>(conn)
                .await
                .map_err(StoreError::from)
        })?;
        rows.into_iter().map(from_tuple).collect()
    }

    /// Unexpired user tickets of `app_id` for the user `user_ref` issued at or before `now_ms`
    /// (used ones included: a used ticket is told apart from an unknown one), in issue order.
    pub async fn user_tickets(
        &self,
        app_id: &str,
        user_ref: &[u8; 32],
        secret_version: u32,
        now_ms: i64,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let version = i32::try_from(secret_version).unwrap_or(i32::MAX);
        let rows: Vec<GrantTuple> = db_run!(self, conn => {
            og::table
                .filter(og::app_id.eq(app_id))
                .filter(og::user_ref.eq(&user_ref[..]))
                .filter(og::kind.eq(GrantKind::UserTicket.as_str()))
                .filter(og::secret_version.eq(version))
                .filter(og::expires_at_ms.gt(now_ms))
                .filter(og::issued_at_ms.le(now_ms))
                .order((og::issued_at_ms.asc(), og::id.asc()))
                .select(grant_columns!())
                .load::<GrantTuple>(conn)
                .await
                .map_err(StoreError::from)
        })?;
        rows.into_iter().map(from_tuple).collect()
    }

    /// Every access token of `app_id` under secret `secret_version`, expired ones included (they
    /// are purged a day after expiry), in issue order: the tokens that tickets name as parent.
    pub async fn access_tokens(
        &self,
        app_id: &str,
        secret_version: u32,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        let version = i32::try_from(secret_version).unwrap_or(i32::MAX);
        let rows: Vec<GrantTuple> = db_run!(self, conn => {
            og::table
                .filter(og::app_id.eq(app_id))
                .filter(og::kind.eq(GrantKind::AccessToken.as_str()))
                .filter(og::secret_version.eq(version))
                .order((og::issued_at_ms.asc(), og::id.asc()))
                .select(grant_columns!())
                .load::<GrantTuple>(conn)
                .await
                .map_err(StoreError::from)
        })?;
        rows.into_iter().map(from_tuple).collect()
    }

    /// Whether `app_id` has tickets under a secret version older than `secret_version` that
    /// have not expired at `now_ms`: a chain that a secret change killed is still within its life.
    pub async fn has_tickets_of_older_secret(
        &self,
        app_id: &str,
        secret_version: u32,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let version = i32::try_from(secret_version).unwrap_or(i32::MAX);
        let found: Option<String> = db_run!(self, conn => {
            og::table
                .filter(og::app_id.eq(app_id))
                .filter(og::kind.ne(GrantKind::AccessToken.as_str()))
                .filter(og::secret_version.lt(version))
                .filter(og::expires_at_ms.gt(now_ms))
                .select(og::id)
                .first::<String>(conn)
                .await
                .optional()
                .map_err(StoreError::from)
        })?;
        Ok(found.is_some())
    }

    /// Marks grant `id` used at `now_ms` if nobody has; true for the one caller that did.
    pub async fn consume_grant(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n: usize = db_run!(self, conn => {
            diesel::update(og::table.filter(og::id.eq(id)).filter(og::used_at_ms.is_null()))
                .set(og::used_at_ms.eq(Some(now_ms)))
                .execute(conn)
                .await
                .map_err(StoreError::from)
        })?;
        Ok(n == 1)
    }

    /// Deletes grants that expired before `before_ms`; returns how many.
    pub async fn purge_grants(&self, before_ms: i64) -> Result<usize, StoreError> {
        db_run!(self, conn => {
            diesel::delete(og::table.filter(og::expires_at_ms.lt(before_ms)))
                .execute(conn)
                .await
                .map_err(StoreError::from)
        })
    }
}
