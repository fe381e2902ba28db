//! Reading the tamper-evident log back for `audit verify` and `audit prove`: the instances, an
//! instance's rows in sequence order (paged), its checkpoints, its leaf hashes, and the rows
//! written without the chain.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{audit_from_tuple, AuditTuple};
use super::schema::{audit_checkpoints as ac, query_audit as qa};
use super::{AuditRecord, StatementError, Store, StoreError};

/// One row of `audit_checkpoints` as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The instance.
    pub instance_id: String,
    /// Tree size (as the row says; the note is what counts).
    pub tree_size: i64,
    /// The signed note.
    pub note: String,
    /// The frontier at `tree_size` (32-byte peaks, largest first).
    pub frontier: Vec<u8>,
}

impl Store {
    /// Every instance with chained rows or checkpoints, sorted.
    pub async fn audit_instances(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.is_not_null())
                .select(qa::instance_id.assume_not_null())
                .distinct()
                .load::<String>(conn)
                .await
                .map_err(StoreError::from)
        })?;
        let cps: Vec<String> = db_run!(self, conn => {
            ac::table
                .select(ac::instance_id)
                .distinct()
                .load::<String>(conn)
                .await
                .map_err(StoreError::from)
        })?;
        ids.extend(cps);
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Up to `limit` rows of `instance` with `seq >= from`, in sequence order.
    pub async fn audit_chain_page(
        &self,
        instance: &str,
        from: u64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let from = i64::try_from(from).map_err(|_| StatementError::Invalid("seq out of range"))?;
        let rows: Vec<AuditTuple> = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.eq(instance))
                .filter(qa::seq.ge(from))
                .order(qa::seq.asc())
                .limit(limit)
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
        rows.into_iter().map(audit_from_tuple).collect()
    }

    /// The checkpoints of `instance`, by tree size.
    pub async fn audit_checkpoints(
        &self,
        instance: &str,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows: Vec<(String, i64, String, Vec<u8>)> = db_run!(self, conn => {
            ac::table
                .filter(ac::instance_id.eq(instance))
                .order(ac::tree_size.asc())
                .select((ac::instance_id, ac::tree_size, ac::note, ac::frontier))
                .load(conn)
                .await
                .map_err(StoreError::from)
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(instance_id, tree_size, note, frontier)| StoredCheckpoint {
                    instance_id,
                    tree_size,
                    note,
                    frontier,
                },
            )
            .collect())
    }

    /// The stored leaf hashes of `instance` for `seq < size`, in sequence order (for inclusion
    /// proofs; the caller checks them against a signed root).
    pub async fn audit_leaf_hashes(
        &self,
        instance: &str,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let size = i64::try_from(size).map_err(|_| StatementError::Invalid("size out of range"))?;
        let rows: Vec<Option<Vec<u8>>> = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.eq(instance))
                .filter(qa::seq.lt(size))
                .order(qa::seq.asc())
                .select(qa::leaf_hash)
                .load(conn)
                .await
                .map_err(StoreError::from)
        })?;
        rows.into_iter()
            .map(|h| {
                h.and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
                    .ok_or_else(|| {
                        StatementError::Invalid("stored leaf_hash is not 32 bytes").into()
                    })
            })
            .collect()
    }

    /// Rows without chain columns: all of them, and those written after the first chained row
    /// (by the surrogate key) — the latter cannot predate the chain.
    pub async fn audit_unchained(&self) -> Result<(i64, i64), StoreError> {
        let total: i64 = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.is_null())
                .count()
                .get_result(conn)
                .await
                .map_err(StoreError::from)
        })?;
        let first: Option<i64> = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.is_not_null())
                .select(diesel::dsl::min(qa::id))
                .first(conn)
                .await
                .map_err(StoreError::from)
        })?;
        let after = match first {
            None => 0,
            Some(first) => db_run!(self, conn => {
                qa::table
                    .filter(qa::instance_id.is_null())
                    .filter(qa::id.gt(first))
                    .count()
                    .get_result(conn)
                    .await
                    .map_err(StoreError::from)
            })?,
        };
        Ok((total, after))
    }
}
