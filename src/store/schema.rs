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
        /// The group-commit batch the row was committed in (16 random bytes; see `audit_batches`).
        batch_id -> Nullable<Binary>,
        /// The request's nonce as signed.
        req_nonce -> Nullable<Text>,
        /// The request's timestamp as signed (decimal digits).
        req_timestamp -> Nullable<Text>,
        /// e = SM3(Z_A ‖ M) of the request's signing string under the verifying WeChat key.
        req_digest -> Nullable<Binary>,
        /// WeChat's signature, r ‖ s (64 bytes).
        req_signature -> Nullable<Binary>,
        /// The answer's nonce as signed.
        resp_nonce -> Nullable<Text>,
        /// The answer's timestamp as signed.
        resp_timestamp -> Nullable<Text>,
        /// e = SM3(Z_A ‖ M) of the answer's signing string under the signing bank key.
        resp_digest -> Nullable<Binary>,
        /// The bank's signature, r ‖ s (64 bytes).
        resp_signature -> Nullable<Binary>,
        /// The gateway instance whose hash chain holds the row (`audit.instance_id`).
        instance_id -> Nullable<Text>,
        /// The row's place in its instance's chain, from 0 (its Merkle leaf index).
        seq -> Nullable<BigInt>,
        /// Chain hash of the instance's previous row (zeros for the first).
        prev_hash -> Nullable<Binary>,
        /// SM3(0x00 ‖ canonical leaf): the row's chain hash.
        leaf_hash -> Nullable<Binary>,
    }
}

diesel::table! {
    /// Signed tree heads of each instance's audit log (docs/audit.md).
    audit_checkpoints (instance_id, tree_size) {
        /// The instance whose log it covers.
        instance_id -> Text,
        /// Rows covered: seq 0 .. tree_size - 1.
        tree_size -> BigInt,
        /// Unix milliseconds (as in the note).
        time_ms -> BigInt,
        /// Bank key version that signed it (as in the note).
        key_version -> Integer,
        /// The signed note, the only part `audit verify` trusts.
        note -> Text,
        /// The tree's perfect-subtree roots at `tree_size`, 32 bytes each, largest first.
        frontier -> Binary,
    }
}

diesel::table! {
    /// Signed prune records of each instance's audit log (docs/audit.md, "Retention").
    audit_prunes (instance_id, end_seq) {
        /// The instance whose rows were removed.
        instance_id -> Text,
        /// One past the last sequence number removed (a checkpoint's size).
        end_seq -> BigInt,
        /// First sequence number removed.
        first_seq -> BigInt,
        /// Unix milliseconds (as in the note).
        time_ms -> BigInt,
        /// Bank key version that signed it (as in the note).
        key_version -> Integer,
        /// The signed prune record, the only part `audit verify` trusts.
        note -> Text,
    }
}

diesel::table! {
    /// One row per audit batch: written by the batch itself (`committed = 1`), or, when the
    /// batch's fate was unknown, by the writer fencing it off (`committed = 0`).
    audit_batches (batch_id) {
        /// 16 random bytes, as in `query_audit.batch_id`.
        batch_id -> Binary,
        /// 1 written by the batch, 0 written by the fence.
        committed -> SmallInt,
        /// Unix milliseconds.
        recorded_at_ms -> BigInt,
    }
}

diesel::table! {
    /// Batches that committed while their callers were answered with a signed 503.
    audit_undelivered (batch_id) {
        /// 16 random bytes, as in `query_audit.batch_id`.
        batch_id -> Binary,
        /// Unix milliseconds.
        recorded_at_ms -> BigInt,
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
    op_grants,
    audit_batches,
    audit_undelivered
);
