//! Fictional extracts for load tests and rehearsals (`accounts gen-csv`).

use std::io;

use super::super::identity::check_char;

/// Writes a CSV extract of `rows` fictional, valid accounts (valid ID check digits, unique
/// account numbers and ID numbers) for load tests; the same `seed` gives the same file.
pub fn write_sample_csv<W: io::Write>(out: W, rows: u64, seed: u64) -> io::Result<()> {
    use io::Write as _;
    const SURNAMES: [&str; 12] = [
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
    ];
    const GIVEN: [&str; 12] = [
        "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳",
    ];
    const REGIONS: [&str; 4] = ["110105", "310115", "440300", "510107"];
    let mut w = io::BufWriter::with_capacity(1 << 16, out);
    writeln!(
        w,
        "account_no,holder_name,phone,id_number,status,opened_at,closed_at"
    )?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("valid date");
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // i → (region, birth day, sequence): unique for 4 × 20 000 × 1 000 rows.
        let seq = i % 1000;
        let day = (i / 1000) % 20_000;
        let region = REGIONS[((i / 20_000_000) % 4) as usize];
        let birth = epoch + chrono::Days::new(day);
        let first17 = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
        let check = check_char(first17.as_bytes()).map_or('0', char::from);
        let name = format!(
            "{}{}{}",
            SURNAMES[(x % 12) as usize],
            GIVEN[((x >> 8) % 12) as usize],
            if x & 0x10000 != 0 {
                GIVEN[((x >> 20) % 12) as usize]
            } else {
                ""
            }
        );
        let status = match x % 20 {
            0 => 2,
            1 => 3,
            2 => 4,
            _ => 1,
        };
        let opened = 1_600_000_000 + (x >> 32) % 100_000_000;
        let closed = if status == 2 {
            (opened + 86_400 * 30).to_string()
        } else {
            String::new()
        };
        writeln!(
            w,
            "62170099{i:011},{name},139{:08},{first17}{check},{status},{opened},{closed}",
            i % 100_000_000
        )?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::super::super::identity::normalize_id_number;
    use super::*;

    #[test]
    fn sample_ids_are_valid_and_the_seed_fixes_the_file() {
        let mut buf = Vec::new();
        write_sample_csv(&mut buf, 50, 7).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(text.lines().count(), 51);
        for line in text.lines().skip(1) {
            let id = line.split(',').nth(3).unwrap();
            normalize_id_number(id).unwrap();
        }
        let mut again = Vec::new();
        write_sample_csv(&mut again, 50, 7).unwrap();
        assert_eq!(buf, again);
        let mut other = Vec::new();
        write_sample_csv(&mut other, 50, 8).unwrap();
        assert_ne!(buf, other);
    }
}
