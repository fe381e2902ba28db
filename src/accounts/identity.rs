//! Resident identity numbers (GB 11643-1999) and masking of personal data for logs.

/// Why an ID number was refused. Safe to send to the caller (it does not echo the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Not 17 digits followed by a digit or X.
    #[error("user_identify_card_num must be 18 characters: 17 digits and a digit or X")]
    Format,
    /// Digits 7–14 are not a real date.
    #[error("user_identify_card_num has an invalid birth date")]
    BirthDate,
    /// The check character does not match.
    #[error("user_identify_card_num check digit does not match")]
    CheckDigit,
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// The check character for the first 17 digits (which must be ASCII digits).
pub fn check_char(first17: &[u8]) -> Option<u8> {
    if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK.get((sum % 11) as usize).copied()
}

/// Validates an 18-character resident ID and normalises a trailing `x` to `X`.
pub fn normalize_id_number(raw: &str) -> Result<String, IdNumberError> {
    let b = raw.as_bytes();
    if b.len() != 18 {
        return Err(IdNumberError::Format);
    }
    let (body, last) = b.split_at(17);
    let last = last
        .first()
        .copied()
        .ok_or(IdNumberError::Format)?
        .to_ascii_uppercase();
    if !body.iter().all(u8::is_ascii_digit) || !(last.is_ascii_digit() || last == b'X') {
        return Err(IdNumberError::Format);
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        body.get(r)
            .unwrap_or(&[])
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (y, m, d) = (num(6..10), num(10..12), num(12..14));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if !(1900..=2100).contains(&y) || d == 0 || d > days {
        return Err(IdNumberError::BirthDate);
    }
    if check_char(body) != Some(last) {
        return Err(IdNumberError::CheckDigit);
    }
    let mut out = String::with_capacity(18);
    out.push_str(std::str::from_utf8(body).map_err(|_| IdNumberError::Format)?);
    out.push(char::from(last));
    Ok(out)
}

/// `张三` → `张*`: the first character and a star; for logs and Debug output.
pub fn mask_name(name: &str) -> String {
    name.chars()
        .next()
        .map(|c| format!("{c}*"))
        .unwrap_or_default()
}

/// Keeps the last 4 characters: `…1234`.
pub fn mask_tail(s: &str) -> String {
    let tail: String = s
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}
