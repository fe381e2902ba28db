//! `audit …`: the audit trail as evidence (docs/audit.md).
//!
//! Exit codes of `audit prove`: 0 every audit row of the request has both signatures verified;
//! 3 no audit row has that Request-ID; 4 a signature does not verify (the row's evidence was
//! altered, or the key version is wrong); 5 nothing failed but something cannot be checked (a
//! row without evidence, or a key version whose public key is not in the key directory);
//! 1 any other error (database, key files); 2 bad configuration, or none (it never runs on the
//! demo defaults).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use pension_gateway::audit::prove::{prove, PublicKeys, RowProof, SignatureProof, Verdict};
use pension_gateway::config::Settings;
use pension_gateway::server::open_store;

/// `audit …`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Re-verify, from the audit rows of a request alone, WeChat's signature of the request and
    /// the bank's signature of the answer, with every key version the key ring's manifest names
    /// (retired ones included). Exit 0 verified, 3 no such request, 4 a signature does not
    /// verify, 5 cannot be checked.
    Prove {
        /// The request's `Request-ID`.
        request_id: String,
        /// Print JSON (one object: `request_id`, `rows`, `verdict`) instead of text.
        #[arg(long)]
        json: bool,
        /// Key directory (default: `keys.dir` of the configuration).
        #[arg(long)]
        keys_dir: Option<PathBuf>,
    },
}

/// Runs an `audit` command.
pub async fn run(cmd: AuditCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Prove {
            request_id,
            json,
            keys_dir,
        } => {
            if settings.server.demo {
                // The audit trail is bank data: never read one picked by default.
                eprintln!(
                    "error: `audit prove` reads the bank's audit trail and needs its configuration \
                     (--config or GATEWAY_CONFIG)"
                );
                return Ok(ExitCode::from(2));
            }
            let dir = keys_dir.unwrap_or_else(|| settings.keys.dir.clone());
            let keys = PublicKeys::from_key_dir(&dir)
                .with_context(|| format!("public keys of {}", dir.display()))?;
            let store = open_store(settings).await?;
            let rows = store
                .audit_for_request(&request_id)
                .await
                .context("reading the audit rows")?;
            let proofs: Vec<RowProof> = rows.iter().map(|r| prove(r, &keys)).collect();
            let (code, verdict) = overall(&proofs);
            if json {
                let out = serde_json::json!({
                    "request_id": request_id,
                    "verdict": verdict,
                    "rows": proofs,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_text(&request_id, &proofs, verdict);
            }
            Ok(ExitCode::from(code))
        }
    }
}

/// The exit code and one-word verdict over every row.
fn overall(proofs: &[RowProof]) -> (u8, &'static str) {
    let verdicts = || {
        proofs
            .iter()
            .flat_map(|p| [p.request.verdict, p.response.verdict])
    };
    if proofs.is_empty() {
        (3, "not_found")
    } else if verdicts().any(|v| v == Verdict::DoesNotVerify) {
        (4, "does_not_verify")
    } else if verdicts().all(|v| v == Verdict::Verified) {
        (0, "verified")
    } else {
        (5, "cannot_be_checked")
    }
}

fn print_text(request_id: &str, proofs: &[RowProof], verdict: &str) {
    if proofs.is_empty() {
        println!("no audit row has Request-ID {request_id}");
        return;
    }
    for (i, p) in proofs.iter().enumerate() {
        println!(
            "row {} of {}: Request-ID {}, channel {}, received at {} ms, outcome {} (HTTP {})",
            i + 1,
            proofs.len(),
            p.request_id,
            p.channel,
            p.received_at_ms,
            p.outcome,
            p.http_status
        );
        if p.undelivered {
            println!(
                "  NOT DELIVERED: the row committed, but the caller was answered with a signed 503"
            );
        }
        side("request signed by WeChat", &p.request);
        side("answer signed by the bank", &p.response);
    }
    println!("verdict: {verdict}");
}

fn side(what: &str, s: &SignatureProof) {
    let version = s
        .key_version
        .map_or_else(|| "-".to_owned(), |v| format!("v{v}"));
    println!("  {what} (key {version}): {}", s.verdict.as_str());
    if let (Some(n), Some(t), Some(d), Some(sig)) =
        (&s.nonce, &s.timestamp, &s.digest, &s.signature)
    {
        println!("    nonce {n}, timestamp {t}");
        println!("    e = SM3(Z_A || M) {d}");
        println!("    signature (r || s) {sig}");
    }
}
