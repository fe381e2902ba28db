//! The request and response bodies of 获取用户的个人养老金账户 (docs/protocol.md §9).

use serde::{Deserialize, Serialize};

use super::identity::{mask_name, normalize_id_number};

/// The fixed `corpno` WeChat sends.
pub const CORPNO: &str = "weibao";
/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest session id accepted, in bytes.
pub const MAX_SESSION_ID: usize = 128;

/// The request body as WeChat sends it. Unknown fields are ignored (WeChat may add some).
#[derive(Deserialize)]
pub struct AccountQueryBody {
    /// Session created when WeChat sent the user to the bank's pages (optional).
    pub session_id: Option<String>,
    /// The user's real name.
    pub user_true_name: Option<String>,
    /// 18-character resident ID number.
    pub user_identify_card_num: Option<String>,
    /// Always `weibao`.
    pub corpno: Option<String>,
}

/// A validated query. `Debug` masks the name and ID number.
pub struct AccountQuery {
    /// Session id, if sent.
    pub session_id: Option<String>,
    /// Name, trimmed.
    pub name: String,
    /// ID number exactly as WeChat sent it (echoed back unchanged).
    pub id_number_as_sent: String,
    /// ID number normalised (trailing `x` → `X`), the input of the digest.
    pub id_number: String,
}

impl std::fmt::Debug for AccountQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountQuery")
            .field("session_id", &self.session_id)
            .field("name", &mask_name(&self.name))
            .field("id_number", &"***")
            .finish()
    }
}

/// Why a body was refused; `Display` is the public message (names the field, never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBody(pub String);

impl AccountQuery {
    /// Parses and validates the raw body.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidBody> {
        let raw: AccountQueryBody = serde_json::from_slice(body).map_err(|e| {
            InvalidBody(format!(
                "body is not a valid JSON object of this API (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let corpno = raw.corpno.ok_or_else(|| missing("corpno"))?;
        if corpno != CORPNO {
            return Err(InvalidBody(format!("corpno must be \"{CORPNO}\"")));
        }
        let name = raw
            .user_true_name
            .ok_or_else(|| missing("user_true_name"))?;
        let name = name.trim().to_string();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(InvalidBody(format!(
                "user_true_name must be 1–{MAX_NAME_CHARS} characters without control characters"
            )));
        }
        let id_as_sent = raw
            .user_identify_card_num
            .ok_or_else(|| missing("user_identify_card_num"))?;
        let id_number = normalize_id_number(&id_as_sent).map_err(|e| InvalidBody(e.to_string()))?;
        let session_id = match raw.session_id {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) if s.len() <= MAX_SESSION_ID && s.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(s)
            }
            Some(_) => {
                return Err(InvalidBody(format!(
                    "session_id must be at most {MAX_SESSION_ID} visible ASCII characters"
                )))
            }
        };
        Ok(Self {
            session_id,
            name,
            id_number_as_sent: id_as_sent,
            id_number,
        })
    }
}

fn missing(field: &str) -> InvalidBody {
    InvalidBody(format!("{field} is required"))
}

/// Account states as the API numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PensionStatus {
    /// 1: opened at this bank.
    Opened = 1,
    /// 2: closed.
    Closed = 2,
    /// 3: not opened.
    NotOpened = 3,
    /// 4: opened at another bank.
    OpenedElsewhere = 4,
}

impl PensionStatus {
    /// From the stored small integer.
    pub fn from_i16(v: i16) -> Option<Self> {
        match v {
            1 => Some(Self::Opened),
            2 => Some(Self::Closed),
            3 => Some(Self::NotOpened),
            4 => Some(Self::OpenedElsewhere),
            _ => None,
        }
    }
}

/// The 200 response body. Field names and types exactly as WeChat specifies them.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountReply {
    /// Name, echoed.
    pub user_true_name: String,
    /// Reserved phone number ("" when not disclosed).
    pub user_bank_phone_num: String,
    /// ID number, echoed exactly as sent.
    pub user_identify_card_num: String,
    /// The 资金账户 number ("" when not disclosed).
    pub pension_bank_card_num: String,
    /// Unix seconds as a string, when opened.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pension_create_time: Option<String>,
    /// Unix seconds as a string, when closed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pension_close_time: Option<String>,
    /// 1 opened, 2 closed, 3 not opened, 4 opened at another bank.
    pub pension_status: i32,
}

impl std::fmt::Debug for AccountReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountReply")
            .field("user_true_name", &mask_name(&self.user_true_name))
            .field("pension_status", &self.pension_status)
            .finish_non_exhaustive()
    }
}
