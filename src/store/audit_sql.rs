//! The text of the audit batch the MySQL writer sends over the text protocol.
//!
//! Why text, not a prepared statement: a batch of n rows is a statement with 18·n placeholders,
//! a new statement for every n, so diesel-async prepared it, executed it and closed it again for
//! every batch — two extra commands on the server and a round trip per batch. As one text query
//! it is one command and one round trip.
//!
//! Why this is not an injection risk: no value is ever written as SQL text. Every string and
//! byte value is a hexadecimal literal (`_utf8mb4 X'…'` for text columns, `X'…'` for binary
//! ones), every number is formatted from an integer type, and `None` is `NULL`; the column
//! names are constants. Whatever a `Request-ID` holds, it reaches the statement only as hex digits.
//!
//! A batch is one transaction: its audit rows, then its row in `audit_batches` (see
//! [`fence`] for why that row is there), then the commit.

use std::fmt::Write;

use super::audit_chain::{ChainCols, CheckpointRow};
use super::models::SignedEvidence;
use super::NewAudit;

const HEAD: &str = "INSERT INTO query_audit (batch_id, request_id, received_at_ms, outcome, \
                    http_status, bank_key_version, wechat_key_version, id_digest, pension_status, \
                    channel, req_nonce, req_timestamp, req_digest, req_signature, resp_nonce, \
                    resp_timestamp, resp_digest, resp_signature, instance_id, seq, prev_hash, \
                    leaf_hash) VALUES ";

const CHECKPOINT_HEAD: &str = "INSERT INTO audit_checkpoints (instance_id, tree_size, time_ms, \
                               key_version, note, frontier) VALUES ";

/// One row of a batch and, when the chain is on, its instance id and chain columns.
pub(crate) type BatchRow<'a> = (&'a NewAudit, Option<(&'a str, &'a ChainCols)>);

const BATCH_HEAD: &str = "INSERT INTO audit_batches (batch_id, committed, recorded_at_ms) VALUES ";

/// The whole batch: `START TRANSACTION; INSERT INTO query_audit …; [INSERT INTO
/// audit_checkpoints …;] INSERT INTO audit_batches …; COMMIT` for `rows` (at least one), every
/// value a literal as above.
pub(crate) fn mysql_batch<'a>(
    batch_id: &[u8; 16],
    now_ms: i64,
    rows: impl IntoIterator<Item = BatchRow<'a>>,
    checkpoint: Option<(&str, &CheckpointRow)>,
) -> String {
    let mut sql = String::from("START TRANSACTION;");
    sql.push_str(&mysql_multi_insert(batch_id, rows));
    sql.push(';');
    if let Some((instance, cp)) = checkpoint {
        sql.push_str(&self::checkpoint(instance, cp));
        sql.push(';');
    }
    sql.push_str(&batch_row(batch_id, 1, now_ms));
    sql.push_str(";COMMIT");
    sql
}

/// The statement a fresh connection runs when a batch's fate is unknown (timeout, lost link):
/// the batch's `audit_batches` row with `committed = 0`. A duplicate-key error (1062) proves
/// the batch committed (its own row is there); success proves it never will (its own insert of
/// that key, the last statement before its commit, would now fail and roll it back).
pub(crate) fn fence(batch_id: &[u8; 16], now_ms: i64) -> String {
    batch_row(batch_id, 0, now_ms)
}

/// Records that a committed batch's callers were answered with a signed 503.
pub(crate) fn undelivered(batch_id: &[u8; 16], now_ms: i64) -> String {
    let mut sql = String::from("INSERT INTO audit_undelivered (batch_id, recorded_at_ms) VALUES (");
    bytes(&mut sql, "X'", batch_id);
    let _ = write!(sql, ",{now_ms})");
    sql
}

/// The `INSERT` of one checkpoint row of `instance`.
pub(crate) fn checkpoint(instance: &str, cp: &CheckpointRow) -> String {
    let mut sql = String::from(CHECKPOINT_HEAD);
    sql.push('(');
    text(&mut sql, instance);
    let _ = write!(sql, ",{},{},{},", cp.tree_size, cp.time_ms, cp.key_version);
    text(&mut sql, &cp.note);
    sql.push(',');
    bytes(&mut sql, "X'", &cp.frontier);
    sql.push(')');
    sql
}

fn batch_row(batch_id: &[u8; 16], committed: u8, now_ms: i64) -> String {
    let mut sql = String::from(BATCH_HEAD);
    sql.push('(');
    bytes(&mut sql, "X'", batch_id);
    let _ = write!(sql, ",{committed},{now_ms})");
    sql
}

/// `INSERT … VALUES (…), (…)` for `rows` (at least one), every value a literal as above.
fn mysql_multi_insert<'a>(
    batch_id: &[u8; 16],
    rows: impl IntoIterator<Item = BatchRow<'a>>,
) -> String {
    let mut sql = String::with_capacity(HEAD.len() + 700);
    sql.push_str(HEAD);
    for (i, (r, chain)) in rows.into_iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        bytes(&mut sql, "X'", batch_id);
        sql.push(',');
        text(&mut sql, &r.request_id);
        let _ = write!(sql, ",{},", r.received_at_ms);
        text(&mut sql, &r.outcome);
        let _ = write!(sql, ",{},{},", r.http_status, r.bank_key_version);
        match r.wechat_key_version {
            Some(v) => {
                let _ = write!(sql, "{v},");
            }
            None => sql.push_str("NULL,"),
        }
        match &r.id_digest {
            Some(d) => bytes(&mut sql, "X'", d),
            None => sql.push_str("NULL"),
        }
        match r.pension_status {
            Some(v) => {
                let _ = write!(sql, ",{v},");
            }
            None => sql.push_str(",NULL,"),
        }
        text(&mut sql, r.channel);
        evidence(&mut sql, r.evidence.request.as_ref());
        evidence(&mut sql, r.evidence.response.as_ref());
        match chain {
            Some((instance, c)) => {
                sql.push(',');
                text(&mut sql, instance);
                let _ = write!(sql, ",{},", c.seq);
                bytes(&mut sql, "X'", &c.prev_hash);
                sql.push(',');
                bytes(&mut sql, "X'", &c.leaf_hash);
            }
            None => sql.push_str(",NULL,NULL,NULL,NULL"),
        }
        sql.push(')');
    }
    sql
}

/// `,nonce,timestamp,digest,signature` of one side, or four `NULL`s.
fn evidence(sql: &mut String, e: Option<&SignedEvidence>) {
    match e {
        Some(e) => {
            sql.push(',');
            text(sql, &e.nonce);
            sql.push(',');
            text(sql, &e.timestamp);
            sql.push(',');
            bytes(sql, "X'", &e.digest);
            sql.push(',');
            bytes(sql, "X'", &e.signature);
        }
        None => sql.push_str(",NULL,NULL,NULL,NULL"),
    }
}

/// A UTF-8 string as a hexadecimal literal of the column character set.
fn text(sql: &mut String, s: &str) {
    bytes(sql, "_utf8mb4 X'", s.as_bytes());
}

fn bytes(sql: &mut String, open: &str, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    sql.push_str(open);
    for &c in b {
        sql.push(char::from(HEX[usize::from(c >> 4)]));
        sql.push(char::from(HEX[usize::from(c & 15)]));
    }
    sql.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditEvidence;

    const BATCH: [u8; 16] = [0x5A; 16];

    fn row(request_id: &str, digest: Option<[u8; 32]>) -> NewAudit {
        NewAudit {
            request_id: request_id.into(),
            received_at_ms: 1_764_547_200_123,
            outcome: "OK".into(),
            http_status: 200,
            bank_key_version: 2,
            wechat_key_version: Some(1),
            id_digest: digest,
            pension_status: Some(1),
            channel: "wechat",
            evidence: AuditEvidence::default(),
        }
    }

    fn signed(nonce: &str) -> SignedEvidence {
        SignedEvidence {
            nonce: nonce.into(),
            timestamp: "1764547200".into(),
            digest: [0xE0; 32],
            signature: [0x51; 64],
        }
    }

    #[test]
    fn known_statement_for_two_rows() {
        let a = row("r-1", Some([0xAB; 32]));
        let mut b = row("x'); DROP TABLE query_audit; --", None);
        b.outcome = "SIGN_ERROR".into();
        b.http_status = 401;
        b.wechat_key_version = None;
        b.pension_status = None;
        let cols = ChainCols {
            seq: 7,
            prev_hash: [0x01; 32],
            leaf_hash: [0x02; 32],
        };
        let sql = mysql_multi_insert(&BATCH, [(&a, Some(("gw-1", &cols))), (&b, None)]);
        let want = format!(
            "{HEAD}(X'{batch}',_utf8mb4 X'722D31',1764547200123,_utf8mb4 X'4F4B',200,2,1,X'{}',1,_utf8mb4 X'776563686174',\
             NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,_utf8mb4 X'67772D31',7,X'{}',X'{}'),\
             (X'{batch}',_utf8mb4 X'7827293B2044524F50205441424C452071756572795F61756469743B202D2D',1764547200123,\
             _utf8mb4 X'5349474E5F4552524F52',401,2,NULL,NULL,NULL,_utf8mb4 X'776563686174',\
             NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL)",
            "AB".repeat(32),
            "01".repeat(32),
            "02".repeat(32),
            batch = "5A".repeat(16),
        );
        assert_eq!(sql, want);
    }

    #[test]
    fn known_statement_with_evidence_and_the_batch_around_it() {
        let mut a = row("r-1", None);
        a.evidence = AuditEvidence {
            request: Some(signed("n1")),
            response: Some(signed("N2")),
        };
        let cp = CheckpointRow {
            tree_size: 3,
            time_ms: 9,
            key_version: 2,
            note: "n'".into(),
            frontier: vec![0xC0, 0xDE],
            witness_line: String::new(),
        };
        let sql = mysql_batch(&BATCH, 1_764_547_200_456, [(&a, None)], Some(("g", &cp)));
        let ev = |n: &str| {
            format!(
                "_utf8mb4 X'{n}',_utf8mb4 X'31373634353437323030',X'{}',X'{}'",
                "E0".repeat(32),
                "51".repeat(64)
            )
        };
        let want = format!(
            "START TRANSACTION;{HEAD}(X'{batch}',_utf8mb4 X'722D31',1764547200123,_utf8mb4 X'4F4B',200,2,1,NULL,1,\
             _utf8mb4 X'776563686174',{},{},NULL,NULL,NULL,NULL);\
             {CHECKPOINT_HEAD}(_utf8mb4 X'67',3,9,2,_utf8mb4 X'6E27',X'C0DE');\
             {BATCH_HEAD}(X'{batch}',1,1764547200456);COMMIT",
            ev("6E31"),
            ev("4E32"),
            batch = "5A".repeat(16),
        );
        assert_eq!(sql, want);
        assert_eq!(
            fence(&BATCH, 7),
            format!("{BATCH_HEAD}(X'{}',0,7)", "5A".repeat(16))
        );
        assert_eq!(
            undelivered(&BATCH, 7),
            format!(
                "INSERT INTO audit_undelivered (batch_id, recorded_at_ms) VALUES (X'{}',7)",
                "5A".repeat(16)
            )
        );
    }

    #[test]
    fn no_value_byte_reaches_the_statement_as_text() {
        let nasty = "'\"\\`;--/*\u{0}\u{7f}张";
        let mut r = row(nasty, None);
        r.outcome = nasty.into();
        r.evidence.request = Some(signed(nasty));
        r.evidence.response = Some(SignedEvidence {
            timestamp: nasty.into(),
            ..signed(nasty)
        });
        let sql = mysql_multi_insert(&BATCH, [(&r, None)]);
        let values = &sql[HEAD.len()..];
        assert!(
            values
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_'(),- ".contains(&c)),
            "{values}"
        );
        // The only quotes are the ones that open and close the hex literals: batch id, request
        // id, outcome, channel and 4 per side of evidence.
        assert_eq!(values.matches('\'').count(), 2 * 12);
    }
}
