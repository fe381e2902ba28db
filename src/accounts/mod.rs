//! The domain: find a user's personal pension account by identity and decide what may be
//! disclosed (docs/protocol.md §9.2).
//!
//! Disclosure rules (docs/decisions.md): the account number and reserved phone go back only
//! when the name matches the account of that ID number and the account is (or was) at this
//! bank (status 1 or 2). Status 3 (no account) and 4 (opened at another bank) disclose only
//! the echoed name and ID number, with empty phone and card fields.

pub mod answer;
pub mod demo;
pub mod identity;
pub mod import;
pub mod message;

use zeroize::Zeroizing;

use crate::crypto::sm3::hmac_sm3;
use crate::store::{Account, Store, StoreError};
pub use message::{AccountQuery, AccountReply, InvalidBody, PensionStatus};

/// Why a lookup did not produce an account reply.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// `session_id` unknown, expired, or made for another user.
    #[error("session not found")]
    SessionNotFound,
    /// The name does not match the account of that ID number.
    #[error("name does not match the account")]
    NameMismatch,
    /// The stored row holds a status outside 1–4 (the import and the store refuse those, so
    /// the row was written around them).
    #[error("stored account is inconsistent: status {0}")]
    UnknownStatus(i16),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Looks accounts up by the keyed digest of the ID number.
#[derive(Clone)]
pub struct AccountDirectory {
    store: Store,
    pepper: std::sync::Arc<Zeroizing<Vec<u8>>>,
}

/// A successful lookup: the reply and what the audit row records.
#[derive(Debug)]
pub struct Lookup {
    /// The response body.
    pub reply: AccountReply,
    /// The digest of the ID number.
    pub digest: [u8; 32],
}

impl AccountDirectory {
    /// A directory over `store`, digesting ID numbers with `pepper`.
    pub fn new(store: Store, pepper: Zeroizing<Vec<u8>>) -> Self {
        Self {
            store,
            pepper: std::sync::Arc::new(pepper),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// HMAC-SM3(pepper, normalised ID number).
    pub fn digest(&self, normalised_id: &str) -> [u8; 32] {
        hmac_sm3(&self.pepper, normalised_id.as_bytes())
    }

    /// Answers one validated query at time `now` (unix seconds). `digest` is
    /// [`Self::digest`] of the query's normalised ID number (the caller already needs it for the
    /// rate limit, so it is computed once per request).
    pub async fn lookup(
        &self,
        q: &AccountQuery,
        digest: [u8; 32],
        now: i64,
    ) -> Result<Lookup, LookupError> {
        if let Some(session_id) = &q.session_id {
            let session = self.store.find_live_session(session_id, now).await?;
            match session {
                Some(s) if s.id_digest.is_none_or(|d| d == digest) => {}
                _ => return Err(LookupError::SessionNotFound),
            }
        }
        let reply = match self.store.find_account_by_digest(&digest).await? {
            None => not_disclosed(q, PensionStatus::NotOpened),
            Some(acc) => self.reply_for(q, &acc)?,
        };
        Ok(Lookup { reply, digest })
    }

    fn reply_for(&self, q: &AccountQuery, acc: &Account) -> Result<AccountReply, LookupError> {
        let status =
            PensionStatus::from_i16(acc.status).ok_or(LookupError::UnknownStatus(acc.status))?;
        if acc.holder_name.trim() != q.name {
            // A row that would disclose nothing (no account here, or one at another bank)
            // answers a wrong name as an unknown ID number does: status 3. Answering
            // INVALID_USER_INFO would tell the caller the bank holds that ID number
            // (docs/decisions.md, "Disclosure").
            return match status {
                PensionStatus::NotOpened | PensionStatus::OpenedElsewhere => {
                    Ok(not_disclosed(q, PensionStatus::NotOpened))
                }
                PensionStatus::Opened | PensionStatus::Closed => Err(LookupError::NameMismatch),
            };
        }
        Ok(match status {
            PensionStatus::Opened | PensionStatus::Closed => AccountReply {
                user_true_name: q.name.clone(),
                user_bank_phone_num: acc.phone.clone(),
                user_identify_card_num: q.id_number_as_sent.clone(),
                pension_bank_card_num: acc.account_no.clone(),
                pension_create_time: acc.opened_at.map(|t| t.to_string()),
                pension_close_time: if status == PensionStatus::Closed {
                    acc.closed_at.map(|t| t.to_string())
                } else {
                    None
                },
                pension_status: status as i32,
            },
            PensionStatus::NotOpened | PensionStatus::OpenedElsewhere => not_disclosed(q, status),
        })
    }
}

fn not_disclosed(q: &AccountQuery, status: PensionStatus) -> AccountReply {
    AccountReply {
        user_true_name: q.name.clone(),
        user_bank_phone_num: String::new(),
        user_identify_card_num: q.id_number_as_sent.clone(),
        pension_bank_card_num: String::new(),
        pension_create_time: None,
        pension_close_time: None,
        pension_status: status as i32,
    }
}
