//! The header and row rules of the extract: which columns, and what makes a row valid. Every
//! refusal names a column, never a value from the row.

use super::super::identity::{normalize_id_number, IdNumberError};
use super::{HeaderError, ImportError};
use crate::store::NewAccount;

/// The columns the header row must name (in any order).
pub const COLUMNS: [&str; 7] = [
    "account_no",
    "holder_name",
    "phone",
    "id_number",
    "status",
    "opened_at",
    "closed_at",
];

/// Column positions in the file.
pub(super) struct Columns {
    idx: [usize; 7],
    width: usize,
}

const ACCOUNT_NO: usize = 0;
const HOLDER_NAME: usize = 1;
const PHONE: usize = 2;
const ID_NUMBER: usize = 3;
const STATUS: usize = 4;
const OPENED_AT: usize = 5;
const CLOSED_AT: usize = 6;

pub(super) fn columns(header: &csv::ByteRecord) -> Result<Columns, ImportError> {
    if header.iter().all(|f| f.trim_ascii().is_empty()) {
        return Err(HeaderError::Empty.into());
    }
    let mut idx = [usize::MAX; 7];
    for (pos, name) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(name);
        let name = name.trim_start_matches('\u{feff}').trim();
        if let Some(c) = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
            if idx[c] != usize::MAX {
                return Err(HeaderError::Repeated(COLUMNS[c]).into());
            }
            idx[c] = pos;
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(idx)
        .filter(|(_, i)| *i == usize::MAX)
        .map(|(c, _)| *c)
        .collect();
    if !missing.is_empty() {
        return Err(HeaderError::Missing(missing).into());
    }
    Ok(Columns {
        idx,
        width: header.len(),
    })
}

/// Why a row was rejected: the reason in the report. It names columns, never a value from the
/// row (a status outside 1–4 is a small number, not personal data).
#[derive(Debug, thiserror::Error)]
pub(super) enum RowRejected {
    #[error("{fields} fields but the header has {header}")]
    FieldCount { fields: usize, header: usize },
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("missing value for {0}")]
    Missing(&'static str),
    #[error("{0} must be unix seconds (a non-negative integer) or empty")]
    NotUnixSeconds(&'static str),
    #[error("account_no must be 1 to 32 visible ASCII characters")]
    AccountNo,
    #[error("holder_name is longer than 64 characters")]
    HolderNameLength,
    #[error("holder_name contains control characters")]
    HolderNameControl,
    #[error("phone must be digits with an optional leading +, at most 20 characters")]
    Phone,
    #[error("{}", match .0 {
        IdNumberError::Format => "id_number must be 17 digits followed by a digit or X",
        IdNumberError::BirthDate => "id_number has an invalid birth date",
        IdNumberError::CheckDigit => "id_number check digit does not match",
    })]
    IdNumber(IdNumberError),
    #[error("status {0} is not one of 1, 2, 3, 4")]
    StatusRange(i16),
    #[error("status must be 1, 2, 3 or 4")]
    Status,
    #[error("closed_at is only allowed with status 2 (closed)")]
    ClosedNotClosed,
    #[error("closed_at is before opened_at")]
    ClosedBeforeOpened,
}

fn field<'a>(rec: &'a csv::ByteRecord, cols: &Columns, c: usize) -> Result<&'a str, RowRejected> {
    let raw = rec.get(cols.idx[c]).unwrap_or(b"").trim_ascii();
    std::str::from_utf8(raw).map_err(|_| RowRejected::NotUtf8(COLUMNS[c]))
}

fn required<'a>(
    rec: &'a csv::ByteRecord,
    cols: &Columns,
    c: usize,
) -> Result<&'a str, RowRejected> {
    let v = field(rec, cols, c)?;
    if v.is_empty() {
        return Err(RowRejected::Missing(COLUMNS[c]));
    }
    Ok(v)
}

fn unix_seconds(
    rec: &csv::ByteRecord,
    cols: &Columns,
    c: usize,
) -> Result<Option<i64>, RowRejected> {
    let v = field(rec, cols, c)?;
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<i64>() {
        Ok(t) if t >= 0 => Ok(Some(t)),
        _ => Err(RowRejected::NotUnixSeconds(COLUMNS[c])),
    }
}

/// Validates one record; `digest` turns the normalised ID number into its keyed digest (the
/// raw number goes no further).
pub(super) fn parse_row(
    rec: &csv::ByteRecord,
    cols: &Columns,
    digest: &dyn Fn(&str) -> [u8; 32],
    now: i64,
) -> Result<NewAccount, RowRejected> {
    if rec.len() > cols.width {
        return Err(RowRejected::FieldCount {
            fields: rec.len(),
            header: cols.width,
        });
    }
    let account_no = required(rec, cols, ACCOUNT_NO)?;
    if account_no.len() > 32 || !account_no.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RowRejected::AccountNo);
    }
    let holder_name = required(rec, cols, HOLDER_NAME)?;
    if holder_name.chars().count() > 64 {
        return Err(RowRejected::HolderNameLength);
    }
    if holder_name.chars().any(char::is_control) {
        return Err(RowRejected::HolderNameControl);
    }
    let phone = field(rec, cols, PHONE)?;
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if phone.len() > 20
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.is_empty() && !phone.is_empty())
    {
        return Err(RowRejected::Phone);
    }
    let id_raw = required(rec, cols, ID_NUMBER)?;
    let id = normalize_id_number(id_raw).map_err(RowRejected::IdNumber)?;
    let status_raw = required(rec, cols, STATUS)?;
    let status = match status_raw.parse::<i16>() {
        Ok(s @ 1..=4) => s,
        Ok(s) => return Err(RowRejected::StatusRange(s)),
        Err(_) => return Err(RowRejected::Status),
    };
    let opened_at = unix_seconds(rec, cols, OPENED_AT)?;
    let closed_at = unix_seconds(rec, cols, CLOSED_AT)?;
    if closed_at.is_some() && status != 2 {
        return Err(RowRejected::ClosedNotClosed);
    }
    if let (Some(o), Some(c)) = (opened_at, closed_at) {
        if c < o {
            return Err(RowRejected::ClosedBeforeOpened);
        }
    }
    let id_digest = digest(&id);
    Ok(NewAccount {
        account_no: account_no.to_owned(),
        holder_name: holder_name.to_owned(),
        phone: phone.to_owned(),
        id_digest,
        status,
        opened_at,
        closed_at,
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid ID number (GB 11643's own example: born 1949-12-31, check character X).
    const ID: &str = "11010519491231002X";

    fn header(names: &[&str]) -> Result<Columns, ImportError> {
        columns(&csv::ByteRecord::from(names.to_vec()))
    }

    fn standard() -> Columns {
        header(&COLUMNS).unwrap()
    }

    /// A row in the standard column order, with `edit` applied to the named fields.
    fn row(edit: &[(&str, &str)]) -> csv::ByteRecord {
        let mut fields = vec![
            "6222000000000001",
            "张三",
            "13800000000",
            ID,
            "1",
            "1600000000",
            "",
        ];
        for (name, value) in edit {
            let i = COLUMNS.iter().position(|c| c == name).unwrap();
            fields[i] = value;
        }
        csv::ByteRecord::from(fields)
    }

    fn digest(id: &str) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[..id.len().min(32)].copy_from_slice(&id.as_bytes()[..id.len().min(32)]);
        d
    }

    fn parse(rec: &csv::ByteRecord) -> Result<NewAccount, String> {
        parse_row(rec, &standard(), &digest, 7).map_err(|e| e.to_string())
    }

    fn refusal(edit: &[(&str, &str)]) -> String {
        let reason = parse(&row(edit)).expect_err("the row must be refused");
        for (_, value) in edit {
            if value.len() > 2 {
                assert!(
                    !reason.contains(value),
                    "the reason shows a value: {reason}"
                );
            }
        }
        reason
    }

    #[test]
    fn the_header_names_the_columns_in_any_order_and_case() {
        let cols = header(&[
            "\u{feff}Closed_At",
            "extra",
            "STATUS",
            "id_number",
            "phone",
            "holder_name",
            "opened_at",
            "account_no",
        ])
        .unwrap();
        assert_eq!(cols.idx, [7, 5, 4, 3, 2, 6, 0]);
        assert_eq!(cols.width, 8);
    }

    #[test]
    fn a_header_missing_or_repeating_a_column_is_refused_naming_it() {
        let missing = header(&["account_no", "holder_name", "phone", "status", "opened_at"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            missing.contains("missing required column(s): id_number, closed_at"),
            "{missing}"
        );
        let mut twice = COLUMNS.to_vec();
        twice.push("Phone");
        let twice = header(&twice).err().unwrap().to_string();
        assert!(
            twice.contains("column `phone` appears more than once"),
            "{twice}"
        );
        let empty = header(&[""]).err().unwrap().to_string();
        assert!(empty.contains("the file is empty"), "{empty}");
    }

    #[test]
    fn a_valid_row_becomes_an_account_with_the_digest_of_the_normalised_id() {
        let acc = parse(&row(&[
            ("id_number", "11010519491231002x"),
            ("phone", "+8613800000000"),
        ]))
        .unwrap();
        assert_eq!(acc.account_no, "6222000000000001");
        assert_eq!(acc.holder_name, "张三");
        assert_eq!(acc.phone, "+8613800000000");
        assert_eq!(
            acc.id_digest,
            digest(ID),
            "the lower-case x is normalised before the digest"
        );
        assert_eq!(
            (acc.status, acc.opened_at, acc.closed_at),
            (1, Some(1_600_000_000), None)
        );
        assert_eq!(acc.updated_at, 7);
        // Whitespace around fields is trimmed; closed on the day it opened is allowed.
        let acc = parse(&row(&[
            ("account_no", "  A-1  "),
            ("status", "2"),
            ("closed_at", "1600000000"),
        ]))
        .unwrap();
        assert_eq!(
            (acc.account_no.as_str(), acc.closed_at),
            ("A-1", Some(1_600_000_000))
        );
        // The phone and both times may be empty.
        let acc = parse(&row(&[("phone", ""), ("opened_at", "")])).unwrap();
        assert_eq!((acc.phone.as_str(), acc.opened_at), ("", None));
    }

    #[test]
    fn field_counts() {
        let mut long = row(&[]);
        long.push_field(b"surplus");
        assert_eq!(parse(&long).err().unwrap(), "8 fields but the header has 7");
        // A short row lacks the trailing fields: the first required one is named.
        let short = csv::ByteRecord::from(vec!["6222000000000001", "张三", "13800000000"]);
        assert_eq!(parse(&short).err().unwrap(), "missing value for id_number");
    }

    #[test]
    fn account_no_rules() {
        assert_eq!(
            refusal(&[("account_no", "")]),
            "missing value for account_no"
        );
        let rule = "account_no must be 1 to 32 visible ASCII characters";
        assert_eq!(refusal(&[("account_no", &"9".repeat(33))]), rule);
        assert_eq!(refusal(&[("account_no", "6222 0001")]), rule);
        assert_eq!(refusal(&[("account_no", "账号0001")]), rule);
        parse(&row(&[("account_no", &"9".repeat(32))])).unwrap();
    }

    #[test]
    fn holder_name_rules() {
        assert_eq!(
            refusal(&[("holder_name", " ")]),
            "missing value for holder_name"
        );
        parse(&row(&[("holder_name", &"名".repeat(64))])).unwrap();
        assert_eq!(
            refusal(&[("holder_name", &"名".repeat(65))]),
            "holder_name is longer than 64 characters"
        );
        assert_eq!(
            refusal(&[("holder_name", "张\u{7}三")]),
            "holder_name contains control characters"
        );
    }

    #[test]
    fn phone_rules() {
        let rule = "phone must be digits with an optional leading +, at most 20 characters";
        for bad in [
            "+",
            "138-0000-0000",
            "++8613800000000",
            "1380000000x",
            &"1".repeat(21),
        ] {
            assert_eq!(refusal(&[("phone", bad)]), rule, "{bad}");
        }
        parse(&row(&[("phone", &"1".repeat(20))])).unwrap();
    }

    #[test]
    fn id_number_rules() {
        assert_eq!(refusal(&[("id_number", "")]), "missing value for id_number");
        assert_eq!(
            refusal(&[("id_number", "1101051949123100")]),
            "id_number must be 17 digits followed by a digit or X"
        );
        assert_eq!(
            refusal(&[("id_number", "110105194913310020")]),
            "id_number has an invalid birth date"
        );
        assert_eq!(
            refusal(&[("id_number", "110105194912310021")]),
            "id_number check digit does not match"
        );
    }

    #[test]
    fn status_rules() {
        assert_eq!(refusal(&[("status", "")]), "missing value for status");
        assert_eq!(
            refusal(&[("status", "0")]),
            "status 0 is not one of 1, 2, 3, 4"
        );
        assert_eq!(
            refusal(&[("status", "5")]),
            "status 5 is not one of 1, 2, 3, 4"
        );
        assert_eq!(refusal(&[("status", "one")]), "status must be 1, 2, 3 or 4");
        for ok in ["1", "2", "3", "4"] {
            assert_eq!(
                parse(&row(&[("status", ok)])).unwrap().status.to_string(),
                ok
            );
        }
    }

    #[test]
    fn time_rules() {
        for (col, bad) in [
            ("opened_at", "-1"),
            ("opened_at", "2020-01-01"),
            ("closed_at", "1.5"),
        ] {
            let reason = parse(&row(&[("status", "2"), (col, bad)])).err().unwrap();
            assert_eq!(
                reason,
                format!("{col} must be unix seconds (a non-negative integer) or empty")
            );
        }
        assert_eq!(
            refusal(&[("status", "1"), ("closed_at", "1700000000")]),
            "closed_at is only allowed with status 2 (closed)"
        );
        assert_eq!(
            refusal(&[("status", "2"), ("closed_at", "1599999999")]),
            "closed_at is before opened_at"
        );
    }

    #[test]
    fn a_field_that_is_not_utf8_is_named() {
        let mut rec = csv::ByteRecord::new();
        for (i, f) in row(&[]).iter().enumerate() {
            rec.push_field(if i == 1 { b"\xff\xfe" } else { f });
        }
        assert_eq!(parse(&rec).err().unwrap(), "holder_name is not valid UTF-8");
    }
}
