//! Diesel table definitions, shared by both backends.
//!
//! Kept in step by hand with `migrations/{mysql,sqlite}/*/up.sql`; the SQL types chosen here
//! (`Text`, `Binary`, `BigInt`, `SmallInt`, `Integer`) map onto both backends' column types.

diesel::table! {
    /// Personal pension fund accounts held at this bank, keyed for lookup by the ID digest.
    pension_accounts (id) {
        /// Surrogate key.
        id -> BigInt,
        /// 资金账户 number.
        account_no -> Text,
        /// Account holder's name.
        holder_name -> Text,
        /// Reserved phone number.
        phone -> Text,
        /// HMAC-SM3 of the normalised ID number (32 bytes).
        id_digest -> Binary,
        /// 1 opened, 2 closed, 3 not opened, 4 opened at another bank.
        status -> SmallInt,
        /// Unix seconds.
        opened_at -> Nullable<BigInt>,
        /// Unix seconds.
        closed_at -> Nullable<BigInt>,
        /// Unix seconds of the last import that touched the row.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Sessions the bank's pages created before handing the user to WeChat.
    binding_sessions (session_id) {
        /// Opaque session id.
        session_id -> Text,
        /// Digest of the user the session was created for, if known.
        id_digest -> Nullable<Binary>,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds; the session is live while `expires_at > now`.
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// One row per answered query, written before the response leaves.
    query_audit (id) {
        /// Surrogate key.
        id -> BigInt,
        /// `Request-ID` header of the query.
        request_id -> Text,
        /// Unix milliseconds when the request arrived.
        received_at_ms -> BigInt,
        /// `OK` or the error code returned.
        outcome -> Text,
        /// HTTP status returned.
        http_status -> SmallInt,
        /// Bank key version that signed the response.
        bank_key_version -> Integer,
        /// WeChat key version that verified the request, if it got that far.
        wechat_key_version -> Nullable<Integer>,
        /// Digest of the queried identity, if parsed.
        id_digest -> Nullable<Binary>,
        /// Pension status disclosed, if any.
        pension_status -> Nullable<SmallInt>,
        /// `wechat`, `open-platform`, `callback` or `hmac`.
        channel -> Text,
    }
}

diesel::table! {
    /// Open-platform access tokens and tickets (ids and times; values derive from the secret).
    op_grants (id) {
        /// 32 lower-case hex characters.
        id -> Text,
        /// The app it was issued to.
        app_id -> Text,
        /// `access_token`, `sign` or `user`.
        kind -> Text,
        /// Version of the app secret it derives from.
        secret_version -> Integer,
        /// Unix milliseconds.
        issued_at_ms -> BigInt,
        /// Unix milliseconds.
        expires_at_ms -> BigInt,
        /// User tickets: when consumed.
        used_at_ms -> Nullable<BigInt>,
        /// User tickets: keyed digest (HMAC-SM3 with the accounts pepper) of app id and user id.
        user_ref -> Nullable<Binary>,
        /// Tickets: the access token that issued them.
        parent_id -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    pension_accounts,
    binding_sessions,
    query_audit,
    op_grants
);
