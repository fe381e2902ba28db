//! Access tokens and tickets: how their values are made and when they are valid.
//!
//! **Values.** A grant's value is `hex(id) ‖ hex(mac)` (64 lower-case hex characters, the shape
//! of the spec's examples): `id` is 16 random bytes and `mac` the first 16 bytes of
//! HMAC-SHA256(app secret, domain ‖ kind ‖ app_id ‖ id). The database stores the id and the
//! times, never a usable value: reading the table does not let anyone call the platform, and
//! changing the app's secret changes every value derived from it. Each grant also records the
//! secret *version* it was issued under, so grants of an earlier secret are not even candidates.
//!
//! **Validity.** Sign tickets and access tokens form a chain per (app, kind, secret version):
//! a grant is valid while it has not expired and, if a newer grant of the chain was issued,
//! until the kind's grace after that issue — 300 s for sign tickets (the spec: "获取新的ticket后，
//! 上一个ticket五分钟后失效"), `access_token_grace_secs` (0 by default) for access tokens.
//! User tickets are independent of each other (one per user login), live 300 s and are consumed
//! by their first use.
//!
//! **The chain of invalidation** ("app secret → access token → any type ticket", spec §4.6):
//! every ticket records the access token that issued it (`parent_id`), and a ticket dies with
//! its token — as soon as that token is superseded past its grace — whatever its own expiry.
//! A secret change kills tokens and tickets through the secret version. This is computed from
//! the rows alone — issuing is a single INSERT, so several instances issuing at once need no
//! lock and can never leave two chains.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Kinds of grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantKind {
    /// `access_token` (3600 s).
    AccessToken,
    /// `type=sign` ticket (3600 s), signs business requests.
    SignTicket,
    /// `type=user` ticket (300 s, single use), signs one request on behalf of one user.
    UserTicket,
}

impl GrantKind {
    /// The name stored in the database (and, for tickets, the `type` of the API).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::AccessToken => "access_token",
            GrantKind::SignTicket => "sign",
            GrantKind::UserTicket => "user",
        }
    }

    /// Parses a stored name or a ticket `type`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access_token" => Some(GrantKind::AccessToken),
            "sign" => Some(GrantKind::SignTicket),
            "user" => Some(GrantKind::UserTicket),
            _ => None,
        }
    }
}

/// Lifetimes (configurable; defaults from the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRules {
    /// Access token life, seconds (spec: 3600).
    pub access_token_secs: i64,
    /// Sign ticket life, seconds (spec: 3600).
    pub sign_ticket_secs: i64,
    /// User ticket life, seconds (spec: 300).
    pub user_ticket_secs: i64,
    /// How long the previous sign ticket stays valid after a new one is issued (spec: 300).
    pub grace_secs: i64,
    /// How long the previous access token — and the tickets it issued — stays valid after a new
    /// token is issued (spec: 0, the new token knocks the old one out at once).
    pub access_token_grace_secs: i64,
}

impl Default for GrantRules {
    fn default() -> Self {
        Self {
            access_token_secs: 3600,
            sign_ticket_secs: 3600,
            user_ticket_secs: 300,
            grace_secs: 300,
            access_token_grace_secs: 0,
        }
    }
}

impl GrantRules {
    /// Life of a grant of `kind`, seconds.
    pub fn life_secs(&self, kind: GrantKind) -> i64 {
        match kind {
            GrantKind::AccessToken => self.access_token_secs,
            GrantKind::SignTicket => self.sign_ticket_secs,
            GrantKind::UserTicket => self.user_ticket_secs,
        }
    }

    /// How long a grant of `kind` outlives the issue of its successor, seconds (user tickets
    /// have no successor).
    pub fn grace_of(&self, kind: GrantKind) -> i64 {
        match kind {
            GrantKind::AccessToken => self.access_token_grace_secs,
            GrantKind::SignTicket => self.grace_secs,
            GrantKind::UserTicket => 0,
        }
    }

    /// How long a nonce must be remembered: as long as any ticket that could sign it lives.
    pub fn nonce_window_secs(&self) -> i64 {
        self.sign_ticket_secs.max(self.user_ticket_secs) + self.grace_secs
    }
}

/// A stored grant (no value: see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// 32 lower-case hex characters (16 random bytes).
    pub id: String,
    /// The app it was issued to.
    pub app_id: String,
    /// Token or ticket type.
    pub kind: GrantKind,
    /// Version of the app secret it derives from.
    pub secret_version: u32,
    /// Unix milliseconds.
    pub issued_at_ms: i64,
    /// Unix milliseconds; invalid from this instant.
    pub expires_at_ms: i64,
    /// User tickets: when it was consumed.
    pub used_at_ms: Option<i64>,
    /// User tickets: keyed digest of the app and `USER_ID` (see [`user_ref_input`]; no raw
    /// user ids stored).
    pub user_ref: Option<[u8; 32]>,
    /// Tickets: the id of the access token that issued them (`None` for tokens, and for
    /// tickets stored before the chain was recorded, which are therefore never valid).
    pub parent_id: Option<String>,
}

/// Why a grant is not valid now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Past `expires_at`.
    Expired,
    /// A newer grant of its chain was issued more than `grace` ago.
    Superseded,
    /// A user ticket already used.
    Used,
    /// Issued in the future (clock went back); not valid yet.
    NotYet,
}

/// Validity of `grant` at `now_ms`, given the issue time of the next grant of its chain (if
/// any; always `None` for user tickets).
pub fn validity(
    grant: &GrantRecord,
    successor_issued_ms: Option<i64>,
    now_ms: i64,
    rules: &GrantRules,
) -> Result<(), Invalid> {
    if now_ms < grant.issued_at_ms {
        return Err(Invalid::NotYet);
    }
    if now_ms >= grant.expires_at_ms {
        return Err(Invalid::Expired);
    }
    if grant.used_at_ms.is_some() {
        return Err(Invalid::Used);
    }
    if let Some(next) = successor_issued_ms {
        let grace_ms = rules.grace_of(grant.kind).saturating_mul(1000);
        if next <= now_ms && now_ms >= next.saturating_add(grace_ms) {
            return Err(Invalid::Superseded);
        }
    }
    Ok(())
}

/// The issue time of the successor of `chain[i]`: the first grant of the chain issued strictly
/// later (`chain` in issue order). Grants issued in the same millisecond do not supersede each
/// other — neither is "the previous one".
pub fn successor_issued_ms(chain: &[GrantRecord], i: usize) -> Option<i64> {
    let issued = chain.get(i)?.issued_at_ms;
    chain
        .get(i + 1..)?
        .iter()
        .map(|g| g.issued_at_ms)
        .find(|&t| t > issued)
}

/// The grants of one chain that are valid at `now_ms`; `chain` must hold every unexpired grant
/// of the chain issued at or before `now_ms`, in issue order (`issued_at_ms`, then `id`).
pub fn valid_in_chain<'a>(
    chain: &'a [GrantRecord],
    now_ms: i64,
    rules: &GrantRules,
) -> Vec<&'a GrantRecord> {
    chain
        .iter()
        .enumerate()
        .filter(|(i, g)| validity(g, successor_issued_ms(chain, *i), now_ms, rules).is_ok())
        .map(|(_, g)| g)
        .collect()
}

/// The value handed to the app, derived from the app secret (see the module docs).
pub struct GrantValue;

const DOMAIN: &[u8] = b"pension-gateway/open-platform-grant/v1\0";

impl GrantValue {
    /// The value of grant `id` (32 hex) of `kind` for `app_id` under `secret`.
    pub fn derive(secret: &[u8], app_id: &str, kind: GrantKind, id: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(DOMAIN);
        mac.update(kind.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(app_id.as_bytes());
        mac.update(&[0]);
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(64);
        out.push_str(id);
        out.push_str(&hex::encode(&tag[..16]));
        out
    }

    /// A fresh random grant id (32 lower-case hex characters).
    pub fn new_id() -> String {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        hex::encode(id)
    }

    /// The id inside a presented value, if it has the right shape.
    pub fn id_of(value: &str) -> Option<&str> {
        (value.len() == 64
            && value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| &value[..32])
    }

    /// Whether `presented` is the value of grant `id` (constant-time compare).
    pub fn check(secret: &[u8], app_id: &str, kind: GrantKind, id: &str, presented: &str) -> bool {
        crate::partners::ct_eq(
            Self::derive(secret, app_id, kind, id).as_bytes(),
            presented.as_bytes(),
        )
    }
}

/// What the stored reference of a user id digests: `open-platform-user ‖ 0 ‖ app_id ‖ 0 ‖
/// user_id`. The caller keys it with the accounts pepper (the digest used for ID numbers, whose
/// inputs never contain a NUL byte, so the two kinds of input cannot collide).
pub fn user_ref_input(app_id: &str, user_id: &str) -> String {
    format!("open-platform-user\0{app_id}\0{user_id}")
}

/// Why a ticket that is not valid now is not, as far as the rows tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    /// Valid: may sign a request.
    Live,
    /// A newer sign ticket was issued more than the grace ago ("互踢", spec §6.1).
    Superseded,
    /// Its access token was superseded past the token grace, or it records no token: the chain
    /// it belonged to was renewed (spec §4.6).
    ChainRenewed,
    /// A user ticket already used.
    Used,
}

/// The state of each ticket of `tickets` at `now_ms`. `tickets` holds the unexpired tickets of
/// one kind issued at or before `now_ms`, in issue order (for sign tickets: the whole chain);
/// `tokens` holds every access token of the same app and secret version in issue order
/// (`issued_at_ms`, then `id`), expired ones included.
pub fn ticket_states(
    tickets: &[GrantRecord],
    tokens: &[GrantRecord],
    now_ms: i64,
    rules: &GrantRules,
) -> Vec<TicketState> {
    let token_grace_ms = rules.access_token_grace_secs.saturating_mul(1000);
    // A token is renewed once its successor's issue plus the token grace has passed.
    let renewed = |parent: &str| -> bool {
        let Some(pos) = tokens.iter().position(|t| t.id == parent) else {
            return true;
        };
        successor_issued_ms(tokens, pos)
            .is_some_and(|t| t <= now_ms && now_ms >= t.saturating_add(token_grace_ms))
    };
    tickets
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if g.parent_id.as_deref().is_none_or(renewed) {
                return TicketState::ChainRenewed;
            }
            let next = match g.kind {
                GrantKind::SignTicket => successor_issued_ms(tickets, i),
                _ => None,
            };
            match validity(g, next, now_ms, rules) {
                Ok(()) => TicketState::Live,
                Err(Invalid::Used) => TicketState::Used,
                Err(_) => TicketState::Superseded,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: &str, issued_s: i64, life_s: i64) -> GrantRecord {
        GrantRecord {
            id: id.into(),
            app_id: "app".into(),
            kind: GrantKind::SignTicket,
            secret_version: 1,
            issued_at_ms: issued_s * 1000,
            expires_at_ms: (issued_s + life_s) * 1000,
            used_at_ms: None,
            user_ref: None,
            parent_id: Some("t1".into()),
        }
    }

    fn token(id: &str, issued_s: i64) -> GrantRecord {
        GrantRecord {
            kind: GrantKind::AccessToken,
            parent_id: None,
            ..g(id, issued_s, 3600)
        }
    }

    #[test]
    fn grants_of_the_same_millisecond_do_not_supersede_each_other() {
        let rules = GrantRules::default();
        let tokens = [token("t1", 0), token("t2", 0), token("t3", 5)];
        let a = GrantRecord {
            parent_id: Some("t2".into()),
            ..g("a", 0, 3600)
        };
        let b = g("b", 0, 3600);
        assert_eq!(successor_issued_ms(&tokens, 0), Some(5000));
        assert_eq!(successor_issued_ms(&tokens, 2), None);
        assert_eq!(
            ticket_states(&[b.clone(), a.clone()], &tokens[..2], 1000, &rules),
            [TicketState::Live, TicketState::Live]
        );
        assert_eq!(
            ticket_states(&[b, a], &tokens, 5000, &rules),
            [TicketState::ChainRenewed, TicketState::ChainRenewed]
        );
    }

    #[test]
    fn a_new_token_kills_the_previous_one_and_its_tickets_at_once() {
        let rules = GrantRules::default();
        let tokens = [token("t1", 0), token("t2", 1000)];
        let a = g("a", 10, 3600);
        let b = GrantRecord {
            parent_id: Some("t2".into()),
            ..g("b", 1001, 3600)
        };
        let orphan = GrantRecord {
            parent_id: None,
            ..g("o", 10, 3600)
        };
        let tickets = [a.clone(), b.clone()];
        // Before t2: a is live (b does not exist yet: not in the slice).
        assert_eq!(
            ticket_states(std::slice::from_ref(&a), &tokens, 999_999, &rules),
            [TicketState::Live]
        );
        // From t2's issue on, a (issued by t1) is dead even though its own chain would give it
        // five minutes; b lives.
        assert_eq!(
            ticket_states(&tickets, &tokens, 1_001_000, &rules),
            [TicketState::ChainRenewed, TicketState::Live]
        );
        assert_eq!(
            ticket_states(&[orphan], &tokens, 1_001_000, &rules),
            [TicketState::ChainRenewed]
        );
        // The access token itself is superseded at once.
        assert_eq!(
            validity(&tokens[0], Some(1_000_000), 1_000_000, &rules),
            Err(Invalid::Superseded)
        );
        // With a token grace, the old token and its tickets live on for that long.
        let lenient = GrantRules {
            access_token_grace_secs: 60,
            ..rules
        };
        assert_eq!(
            ticket_states(&tickets, &tokens, 1_059_999, &lenient),
            [TicketState::Live, TicketState::Live]
        );
        assert_eq!(
            ticket_states(&tickets, &tokens, 1_060_000, &lenient),
            [TicketState::ChainRenewed, TicketState::Live]
        );
        assert_eq!(
            validity(&tokens[0], Some(1_000_000), 1_059_999, &lenient),
            Ok(())
        );
    }

    #[test]
    fn previous_ticket_has_five_minutes_of_grace() {
        let rules = GrantRules::default();
        let chain = [g("a", 0, 3600), g("b", 1000, 3600)];
        let ids = |t: i64| {
            valid_in_chain(&chain, t, &rules)
                .iter()
                .map(|g| g.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(999_000), ["a"]);
        assert_eq!(ids(1_000_000), ["a", "b"]);
        assert_eq!(ids(1_299_999), ["a", "b"]);
        assert_eq!(ids(1_300_000), ["b"]);
    }

    #[test]
    fn values_have_the_spec_shape_and_depend_on_the_secret() {
        let id = GrantValue::new_id();
        let v = GrantValue::derive(b"s1", "app", GrantKind::AccessToken, &id);
        assert_eq!(GrantValue::id_of(&v), Some(id.as_str()));
        assert!(GrantValue::check(
            b"s1",
            "app",
            GrantKind::AccessToken,
            &id,
            &v
        ));
        assert!(!GrantValue::check(
            b"s2",
            "app",
            GrantKind::AccessToken,
            &id,
            &v
        ));
        assert!(!GrantValue::check(
            b"s1",
            "app",
            GrantKind::SignTicket,
            &id,
            &v
        ));
        assert!(!GrantValue::check(
            b"s1",
            "app2",
            GrantKind::AccessToken,
            &id,
            &v
        ));
    }
}
