//! The text of the multi-row audit `INSERT` the MySQL writer sends over the text protocol.
//!
//! Why text, not a prepared statement: a batch of n rows is a statement with 9·n placeholders,
//! a new statement for every n, so diesel-async prepared it, executed it and closed it again for
//! every batch — two extra commands on the server and a round trip per batch. As one text query
//! it is one command and one round trip.
//!
//! Why this is not an injection risk: no value is ever written as SQL text. Every string and
//! byte value is a hexadecimal literal (`_utf8mb4 X'…'` for text columns, `X'…'` for the binary
//! digest), every number is formatted from an integer type, and `None` is `NULL`; the column
//! names are constants. Whatever a `Request-ID` holds, it reaches the statement only as hex digits.

use std::fmt::Write;

use super::NewAudit;

const HEAD: &str = "INSERT INTO query_audit (request_id, received_at_ms, outcome, http_status, \
                    bank_key_version, wechat_key_version, id_digest, pension_status, channel) VALUES ";

/// `INSERT … VALUES (…), (…)` for `rows` (at least one), every value a literal as above.
pub(crate) fn mysql_multi_insert<'a>(rows: impl IntoIterator<Item = &'a NewAudit>) -> String {
    let mut sql = String::with_capacity(HEAD.len() + 320);
    sql.push_str(HEAD);
    for (i, r) in rows.into_iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
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
        sql.push(')');
    }
    sql
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
        let sql = mysql_multi_insert([&a, &b]);
        let want = format!(
            "{HEAD}(_utf8mb4 X'722D31',1764547200123,_utf8mb4 X'4F4B',200,2,1,X'{}',1,_utf8mb4 X'776563686174'),\
             (_utf8mb4 X'7827293B2044524F50205441424C452071756572795F61756469743B202D2D',1764547200123,\
             _utf8mb4 X'5349474E5F4552524F52',401,2,NULL,NULL,NULL,_utf8mb4 X'776563686174')",
            "AB".repeat(32)
        );
        assert_eq!(sql, want);
    }

    #[test]
    fn no_value_byte_reaches_the_statement_as_text() {
        let nasty = "'\"\\`;--/*\u{0}\u{7f}张";
        let mut r = row(nasty, None);
        r.outcome = nasty.into();
        let sql = mysql_multi_insert([&r]);
        let values = &sql[HEAD.len()..];
        assert!(
            values
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_'(),- ".contains(&c)),
            "{values}"
        );
        // The only quotes are the ones that open and close the hex literals.
        assert_eq!(values.matches('\'').count(), 2 * 3);
    }
}
