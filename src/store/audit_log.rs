//! Reading the tamper-evident log back for `audit verify` and `audit prove`: the instances, an
//! instance's rows in sequence order (paged), its checkpoints, its leaf hashes, and the rows
//! written without the chain.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{audit_from_tuple, AuditTuple};
use super::schema::{audit_checkpoints as ac, audit_prunes as ap, query_audit as qa};
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

/// One row of `audit_prunes` as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrune {
    /// The instance.
    pub instance_id: String,
    /// One past the last sequence number removed (as the row says; the note is what counts).
    pub end_seq: i64,
    /// The signed prune record.
    pub note: String,
}

/// A prune record to write (see [`Store::audit_record_prune`]).
#[derive(Debug, Clone)]
pub struct NewPrune<'a> {
    /// The instance.
    pub instance_id: &'a str,
    /// First sequence number removed.
    pub first_seq: i64,
    /// One past the last sequence number removed.
    pub end_seq: i64,
    /// Unix milliseconds (as in the note).
    pub time_ms: i64,
    /// Bank key version that signed it.
    pub key_version: i32,
    /// The signed note.
    pub note: &'a str,
}

/// Rows deleted per statement by [`Store::audit_delete_before`].
const DELETE_CHUNK: i64 = 10_000;

impl Store {
    /// The prune records of `instance` (all instances when `None`), by instance and end.
    pub async fn audit_prunes(
        &self,
        instance: Option<&str>,
    ) -> Result<Vec<StoredPrune>, StoreError> {
        let rows: Vec<(String, i64, String)> = db_run!(self, conn => {
            let mut q = ap::table
                .select((ap::instance_id, ap::end_seq, ap::note))
                .order((ap::instance_id.asc(), ap::end_seq.asc()))
                .into_boxed();
            if let Some(i) = instance {
                q = q.filter(ap::instance_id.eq(i));
            }
            q.load(conn).await.map_err(StoreError::from)
        })?;
        Ok(rows
            .into_iter()
            .map(|(instance_id, end_seq, note)| StoredPrune {
                instance_id,
                end_seq,
                note,
            })
            .collect())
    }

    /// Writes a prune record (before the rows it names are deleted: see `audit prune`).
    pub async fn audit_record_prune(&self, p: &NewPrune<'_>) -> Result<(), StoreError> {
        db_run!(self, conn => {
            diesel::insert_into(ap::table)
                .values((
                    ap::instance_id.eq(p.instance_id),
                    ap::end_seq.eq(p.end_seq),
                    ap::first_seq.eq(p.first_seq),
                    ap::time_ms.eq(p.time_ms),
                    ap::key_version.eq(p.key_version),
                    ap::note.eq(p.note),
                ))
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(StoreError::from)
        })
    }

    /// Deletes the rows of `instance` with `seq < end`, at most 10,000 per statement (each its
    /// own transaction, so a large prune does not hold one huge transaction). Returns how many.
    pub async fn audit_delete_before(&self, instance: &str, end: u64) -> Result<u64, StoreError> {
        let end = i64::try_from(end).map_err(|_| StatementError::Invalid("seq out of range"))?;
        let first: Option<i64> = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.eq(instance))
                .filter(qa::seq.lt(end))
                .select(diesel::dsl::min(qa::seq))
                .first(conn)
                .await
                .map_err(StoreError::from)
        })?;
        let Some(mut lo) = first else {
            return Ok(0);
        };
        let mut deleted = 0u64;
        while lo < end {
            let hi = lo.saturating_add(DELETE_CHUNK).min(end);
            let n = db_run!(self, conn => {
                diesel::delete(
                    qa::table
                        .filter(qa::instance_id.eq(instance))
                        .filter(qa::seq.ge(lo))
                        .filter(qa::seq.lt(hi)),
                )
                .execute(conn)
                .await
                .map_err(StoreError::from)
            })?;
            deleted += u64::try_from(n).unwrap_or(0);
            lo = hi;
        }
        Ok(deleted)
    }

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
        let pruned: Vec<String> = db_run!(self, conn => {
            ap::table
                .select(ap::instance_id)
                .distinct()
                .load::<String>(conn)
                .await
                .map_err(StoreError::from)
        })?;
        ids.extend(pruned);
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

    /// The stored leaf hashes of `instance` for `from <= seq < size`, in sequence order (for
    /// inclusion proofs; the caller checks them against a signed root).
    pub async fn audit_leaf_hashes(
        &self,
        instance: &str,
        from: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let size = i64::try_from(size).map_err(|_| StatementError::Invalid("size out of range"))?;
        let from = i64::try_from(from).map_err(|_| StatementError::Invalid("seq out of range"))?;
        let rows: Vec<Option<Vec<u8>>> = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.eq(instance))
                .filter(qa::seq.ge(from))
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

    /// Rows that name an instance but lack a sequence number or a chain hash: how many, and
    /// the instance and `Request-ID` of the first (by the surrogate key). The writer sets all
    /// four chain columns together, so such a row was inserted (or edited) around the chain;
    /// sequence-ordered reads never see it.
    pub async fn audit_incomplete_chain(
        &self,
    ) -> Result<(i64, Option<(String, String)>), StoreError> {
        let count: i64 = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.is_not_null())
                .filter(qa::seq.is_null().or(qa::prev_hash.is_null()).or(qa::leaf_hash.is_null()))
                .count()
                .get_result(conn)
                .await
                .map_err(StoreError::from)
        })?;
        if count == 0 {
            return Ok((0, None));
        }
        let first: Option<(String, String)> = db_run!(self, conn => {
            qa::table
                .filter(qa::instance_id.is_not_null())
                .filter(qa::seq.is_null().or(qa::prev_hash.is_null()).or(qa::leaf_hash.is_null()))
                .order(qa::id.asc())
                .select((qa::instance_id.assume_not_null(), qa::request_id))
                .first(conn)
                .await
                .optional()
                .map_err(StoreError::from)
        })?;
        Ok((count, first))
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
