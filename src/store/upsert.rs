//! `upsert_accounts`: the import path for the bank's account extract.
//!
//! Plan first, write second, verify last — all inside one transaction:
//! 1. (pure) validate each row and collapse repeated `account_no`s (the last row wins, earlier
//!    ones are reported as rejected);
//! 2. read which `account_no`s and digests already exist, and reject rows whose digest belongs to
//!    a *different* account (on MySQL such a row would otherwise make `ON DUPLICATE KEY UPDATE`
//!    overwrite that other account, because it fires on any unique key);
//! 3. batch insert-or-update the accepted rows in chunks;
//! 4. read the accepted rows back and roll everything back if any digest is not where it should
//!    be (a concurrent writer slipped in between steps 2 and 3).
//!
//! `inserted`/`updated` come from step 2, so they mean the same on both backends (MySQL's
//! affected-row counts for ODKU do not).

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use super::models::AccountRow;
use super::pool::SqliteConn;
use super::schema::pension_accounts as pa;
use super::{NewAccount, RowRefusal, Store, StoreError, UpsertSummary};

/// Rows per INSERT / IN list: 8 bound columns × 500 stays far below SQLite's 32 766 and MySQL's
/// 65 535 placeholders.
const CHUNK: usize = 500;

/// The one statement that differs between backends.
trait UpsertAccounts {
    async fn upsert_chunk(&mut self, rows: &[AccountRow<'_>]) -> QueryResult<usize>;
}

impl UpsertAccounts for AsyncMysqlConnection {
    async fn upsert_chunk(&mut self, rows: &[AccountRow<'_>]) -> QueryResult<usize> {
        use diesel::dsl::sql;
        use diesel::sql_types::{BigInt, Binary, Nullable, SmallInt, Text};
        // `VALUES(col)` works on MariaDB and MySQL (deprecated but supported in 8.x); diesel's
        // `excluded()` is PostgreSQL/SQLite-only.
        diesel::insert_into(pa::table)
            .values(rows)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set((
                pa::holder_name.eq(sql::<Text>("VALUES(`holder_name`)")),
                pa::phone.eq(sql::<Text>("VALUES(`phone`)")),
                pa::id_digest.eq(sql::<Binary>("VALUES(`id_digest`)")),
                pa::status.eq(sql::<SmallInt>("VALUES(`status`)")),
                pa::opened_at.eq(sql::<Nullable<BigInt>>("VALUES(`opened_at`)")),
                pa::closed_at.eq(sql::<Nullable<BigInt>>("VALUES(`closed_at`)")),
                pa::updated_at.eq(sql::<BigInt>("VALUES(`updated_at`)")),
            ))
            .execute(self)
            .await
    }
}

impl UpsertAccounts for SqliteConn {
    async fn upsert_chunk(&mut self, rows: &[AccountRow<'_>]) -> QueryResult<usize> {
        use diesel::upsert::excluded;
        // diesel has no multi-row `ON CONFLICT` for SQLite (its batch insert needs the DEFAULT
        // keyword SQLite lacks), so rows go one statement each — still inside the one
        // transaction, which is what makes SQLite writes cheap.
        let mut n = 0;
        for row in rows {
            n += diesel::insert_into(pa::table)
                .values(row)
                .on_conflict(pa::account_no)
                .do_update()
                .set((
                    pa::holder_name.eq(excluded(pa::holder_name)),
                    pa::phone.eq(excluded(pa::phone)),
                    pa::id_digest.eq(excluded(pa::id_digest)),
                    pa::status.eq(excluded(pa::status)),
                    pa::opened_at.eq(excluded(pa::opened_at)),
                    pa::closed_at.eq(excluded(pa::closed_at)),
                    pa::updated_at.eq(excluded(pa::updated_at)),
                ))
                .execute(&mut *self)
                .await?;
        }
        Ok(n)
    }
}

/// Why a row is unusable on its own, or `None`.
fn validate(r: &NewAccount) -> Option<RowRefusal> {
    let len = |s: &str| s.chars().count();
    if r.account_no.trim().is_empty() || len(&r.account_no) > 32 {
        return Some(RowRefusal::AccountNo);
    }
    if r.holder_name.trim().is_empty() || len(&r.holder_name) > 64 {
        return Some(RowRefusal::HolderName);
    }
    if len(&r.phone) > 20 {
        return Some(RowRefusal::Phone);
    }
    if !(1..=4).contains(&r.status) {
        return Some(RowRefusal::Status(r.status));
    }
    None
}

/// Step 1: validation and in-batch de-duplication by `account_no` (last wins).
/// Returns the surviving indices in input order.
fn prefilter(rows: &[NewAccount], rejected: &mut Vec<(usize, RowRefusal)>) -> Vec<usize> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    let mut valid = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        match validate(r) {
            Some(reason) => rejected.push((i, reason)),
            None => {
                last.insert(r.account_no.as_str(), i);
                valid.push(i);
            }
        }
    }
    valid
        .into_iter()
        .filter(|&i| {
            let winner = last[rows[i].account_no.as_str()];
            if winner != i {
                rejected.push((i, RowRefusal::Superseded { by: winner }));
            }
            winner == i
        })
        .collect()
}

/// Step 2 (pure part): given what exists, decide per surviving row.
/// Returns (accepted indices, inserted, updated).
fn decide(
    rows: &[NewAccount],
    survivors: &[usize],
    existing_accounts: &HashSet<String>,
    digest_owner: &HashMap<Vec<u8>, String>,
    rejected: &mut Vec<(usize, RowRefusal)>,
) -> (Vec<usize>, u64, u64) {
    let mut seen_digest: HashMap<&[u8; 32], usize> = HashMap::new();
    let (mut accepted, mut inserted, mut updated) = (Vec::new(), 0, 0);
    for &i in survivors {
        let r = &rows[i];
        if let Some(owner) = digest_owner.get(r.id_digest.as_slice()) {
            if *owner != r.account_no {
                rejected.push((i, RowRefusal::DigestTaken));
                continue;
            }
        }
        if let Some(&j) = seen_digest.get(&r.id_digest) {
            rejected.push((i, RowRefusal::DigestRepeated { first: j }));
            continue;
        }
        seen_digest.insert(&r.id_digest, i);
        if existing_accounts.contains(&r.account_no) {
            updated += 1;
        } else {
            inserted += 1;
        }
        accepted.push(i);
    }
    (accepted, inserted, updated)
}

impl Store {
    /// Inserts or updates accounts keyed by `account_no`, in ONE transaction (batched
    /// `INSERT … ON DUPLICATE KEY UPDATE` on MySQL; `INSERT … ON CONFLICT DO UPDATE` per row on
    /// SQLite, which diesel cannot batch).
    ///
    /// Rows that cannot be applied safely are reported in `rejected` (input index and a reason
    /// without personal data) while the good rows still land: invalid fields, an `account_no`
    /// repeated later in the same batch (the last occurrence wins), an `id_digest` that belongs
    /// to a different `account_no` (in the database or earlier in the batch). Re-running the
    /// same extract is idempotent: every row then counts as `updated`.
    pub async fn upsert_accounts(&self, rows: &[NewAccount]) -> Result<UpsertSummary, StoreError> {
        let mut rejected = Vec::new();
        let survivors = prefilter(rows, &mut rejected);
        if survivors.is_empty() {
            rejected.sort_by_key(|r| r.0);
            return Ok(UpsertSummary {
                inserted: 0,
                updated: 0,
                rejected,
            });
        }
        let accounts: Vec<&str> = survivors
            .iter()
            .map(|&i| rows[i].account_no.as_str())
            .collect();
        let digests: Vec<&[u8]> = survivors
            .iter()
            .map(|&i| rows[i].id_digest.as_slice())
            .collect();

        let (accounts, digests, survivors) = (&accounts, &digests, &survivors);
        // The whole transaction runs again if it lost a lock conflict (deadlock, lock wait
        // timeout, or the read-back below saw another writer): see `retry`.
        let (inserted, updated, tx_rejected) = super::retry::on_conflict("account upsert", || async move { db_run!(self, conn => {
            conn.transaction::<_, StoreError, _>(async |tx| {
                // Step 2: what exists already.
                let mut existing_accounts = HashSet::new();
                let mut digest_owner = HashMap::new();
                for chunk in accounts.chunks(CHUNK) {
                    let found: Vec<String> = pa::table
                        .filter(pa::account_no.eq_any(chunk.to_vec()))
                        .select(pa::account_no)
                        .load(tx)
                        .await?;
                    existing_accounts.extend(found);
                }
                for chunk in digests.chunks(CHUNK) {
                    let found: Vec<(Vec<u8>, String)> = pa::table
                        .filter(pa::id_digest.eq_any(chunk.to_vec()))
                        .select((pa::id_digest, pa::account_no))
                        .load(tx)
                        .await?;
                    digest_owner.extend(found);
                }
                let mut rej = Vec::new();
                let (accepted, ins, upd) = decide(rows, survivors, &existing_accounts, &digest_owner, &mut rej);

                // Step 3: write.
                let batch: Vec<AccountRow<'_>> = accepted.iter().map(|&i| AccountRow::from(&rows[i])).collect();
                for chunk in batch.chunks(CHUNK) {
                    tx.upsert_chunk(chunk).await?;
                }

                // Step 4: every accepted account now carries exactly its digest.
                let expected: HashMap<&str, &[u8]> = batch.iter().map(|r| (r.account_no, r.id_digest)).collect();
                let mut ok = 0usize;
                let keys: Vec<&str> = batch.iter().map(|r| r.account_no).collect();
                for chunk in keys.chunks(CHUNK) {
                    let found: Vec<(String, Vec<u8>)> = pa::table
                        .filter(pa::account_no.eq_any(chunk.to_vec()))
                        .select((pa::account_no, pa::id_digest))
                        .load(tx)
                        .await?;
                    ok += found.iter().filter(|(a, d)| expected.get(a.as_str()) == Some(&d.as_slice())).count();
                }
                if ok != batch.len() {
                    return Err(super::Conflict::ChangedConcurrently.into());
                }
                Ok((ins, upd, rej))
            })
            .await
        })})
        .await?;
        rejected.extend(tx_rejected);
        rejected.sort_by_key(|r| r.0);
        tracing::info!(
            inserted,
            updated,
            rejected = rejected.len(),
            "accounts upserted"
        );
        Ok(UpsertSummary {
            inserted,
            updated,
            rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(acct: &str, d: u8) -> NewAccount {
        NewAccount {
            account_no: acct.into(),
            holder_name: "张三".into(),
            phone: "13800000000".into(),
            id_digest: [d; 32],
            status: 1,
            opened_at: None,
            closed_at: None,
            updated_at: 0,
        }
    }

    #[test]
    fn last_duplicate_wins_and_digest_conflicts_are_rejected() {
        let rows = vec![
            row("A", 1),
            row("B", 2),
            row("A", 3),
            row("C", 2),
            row("D", 9),
        ];
        let mut rej = Vec::new();
        let surv = prefilter(&rows, &mut rej);
        assert_eq!(surv, vec![1, 2, 3, 4]);
        let owner: HashMap<Vec<u8>, String> = [(vec![9; 32], "Z".to_string())].into();
        let existing: HashSet<String> = ["B".to_string()].into();
        let (acc, ins, upd) = decide(&rows, &surv, &existing, &owner, &mut rej);
        assert_eq!(acc, vec![1, 2]);
        assert_eq!((ins, upd), (1, 1));
        assert_eq!(
            rej,
            vec![
                (0, RowRefusal::Superseded { by: 2 }),
                (3, RowRefusal::DigestRepeated { first: 1 }),
                (4, RowRefusal::DigestTaken),
            ]
        );
        assert_eq!(
            RowRefusal::DigestRepeated { first: 1 }.to_string(),
            "id_digest repeated in batch (first at row 1)"
        );
    }
}
