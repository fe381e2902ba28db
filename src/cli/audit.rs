//! `audit …`: the audit trail as evidence (docs/audit.md).
//!
//! Exit codes of `audit prove`: 0 every audit row of the request has both signatures verified;
//! 3 no audit row has that Request-ID; 4 a signature does not verify (the row's evidence was
//! altered, or the key version is wrong); 5 nothing failed but something cannot be checked (a
//! row without evidence, or a key version whose public key is not in the key directory);
//! 1 any other error (database, key files); 2 bad configuration, or none (it never runs on the
//! demo defaults). A row whose log proof (leaf, inclusion, checkpoint) does not verify is a 4
//! too.
//!
//! Exit codes of `audit verify`: 0 every instance's log is intact; 1 damage, named on stdout
//! (the first damaged row or checkpoint and the kind); 2 bad configuration; 3 the check could
//! not run (database, witness file or key files unreadable).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use pension_gateway::audit::check::{log_proof, parse_witness, verify_store, LogProof};
use pension_gateway::audit::prove::{prove, PublicKeys, RowProof, SignatureProof, Verdict};
use pension_gateway::audit::Sm2CheckpointVerifier;
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
    /// Check the tamper-evident audit log: every row's leaf and chain link, every checkpoint's
    /// signature (all bank key versions of the manifest) and root, and the witness file against
    /// the checkpoint table. Exit 0 intact, 1 damage (named), 3 cannot check.
    Verify {
        /// Check only what follows each instance's last checkpoint made at or before this time
        /// (RFC 3339, e.g. `2026-12-06T00:00:00Z`, or Unix milliseconds): the daily run.
        #[arg(long)]
        since: Option<String>,
        /// Witness file (default: `audit.witness_file` of the configuration).
        #[arg(long)]
        witness: Option<PathBuf>,
        /// Key directory (default: `keys.dir` of the configuration).
        #[arg(long)]
        keys_dir: Option<PathBuf>,
    },
}

fn checkpoint_verifier(keys: &PublicKeys) -> anyhow::Result<Sm2CheckpointVerifier> {
    let engine = pension_gateway::crypto::EngineKind::RustCrypto.engine();
    Ok(Sm2CheckpointVerifier::new(
        engine.as_ref(),
        keys.bank.iter().map(|(v, k)| (*v, k)),
    )?)
}

fn parse_since(s: &str) -> anyhow::Result<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().context("--since: Unix milliseconds out of range");
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .context("--since: expected RFC 3339 (2026-12-06T00:00:00Z) or Unix milliseconds")?;
    Ok(t.timestamp_millis())
}

async fn verify(
    settings: &Settings,
    since: Option<String>,
    witness: Option<PathBuf>,
    keys_dir: Option<PathBuf>,
) -> ExitCode {
    let since = match since.as_deref().map(parse_since).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let run = async {
        let dir = keys_dir.unwrap_or_else(|| settings.keys.dir.clone());
        let keys = PublicKeys::from_key_dir(&dir)
            .with_context(|| format!("public keys of {}", dir.display()))?;
        let verifier = checkpoint_verifier(&keys)?;
        let path = witness.unwrap_or_else(|| settings.audit.witness_file.clone());
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("witness file {}", path.display()))?;
        let store = open_store(settings).await?;
        let started = std::time::Instant::now();
        let mut last_report = std::time::Instant::now();
        let mut progress = |instance: &str, rows: u64| {
            if last_report.elapsed() >= std::time::Duration::from_secs(2) {
                last_report = std::time::Instant::now();
                eprintln!(
                    "… instance {instance}: {rows} rows checked ({:.0} rows/s)",
                    rows as f64 / started.elapsed().as_secs_f64().max(1e-9)
                );
            }
        };
        let witness = match parse_witness(&text) {
            Ok(w) => w,
            Err(f) => return Ok(Err(f)),
        };
        let res = verify_store(&store, &witness, &verifier, since, &mut progress)
            .await
            .context("reading the audit log")?;
        Ok::<_, anyhow::Error>(res.map(|s| (s, started.elapsed())))
    };
    match run.await {
        Ok(Ok((summary, took))) => {
            let rows: u64 = summary.instances.iter().map(|i| i.rows).sum();
            for i in &summary.instances {
                println!(
                    "instance {}: rows {}..{} intact, {} checkpoint root(s) checked",
                    i.instance,
                    i.from_seq,
                    i.from_seq + i.rows,
                    i.checkpoints
                );
            }
            if summary.unchained_before > 0 {
                println!(
                    "note: {} row(s) from before the chain began are not protected by it",
                    summary.unchained_before
                );
            }
            println!(
                "intact: {} instance(s), {rows} rows in {:.1} s",
                summary.instances.len(),
                took.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(finding)) => {
            println!("DAMAGED: {finding}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: cannot check the audit log: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// Runs an `audit` command.
pub async fn run(cmd: AuditCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            since,
            witness,
            keys_dir,
        } => {
            if settings.server.demo {
                eprintln!(
                    "error: `audit verify` reads the bank's audit trail and needs its configuration \
                     (--config or GATEWAY_CONFIG)"
                );
                return Ok(ExitCode::from(2));
            }
            Ok(verify(settings, since, witness, keys_dir).await)
        }
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
            let verifier = checkpoint_verifier(&keys)?;
            let mut logs = Vec::with_capacity(rows.len());
            for r in &rows {
                logs.push(
                    log_proof(&store, r, &verifier)
                        .await
                        .context("reading the audit log")?,
                );
            }
            let (mut code, mut verdict) = overall(&proofs);
            if logs.iter().any(|l| l.verdict == "does_not_verify") {
                (code, verdict) = (4, "does_not_verify");
            }
            if json {
                let rows: Vec<serde_json::Value> = proofs
                    .iter()
                    .zip(&logs)
                    .map(|(p, l)| {
                        let mut v = serde_json::to_value(p).unwrap_or_default();
                        v["log"] = serde_json::to_value(l).unwrap_or_default();
                        v
                    })
                    .collect();
                let out = serde_json::json!({
                    "request_id": request_id,
                    "verdict": verdict,
                    "rows": rows,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_text(&request_id, &proofs, &logs, verdict);
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

fn print_text(request_id: &str, proofs: &[RowProof], logs: &[LogProof], verdict: &str) {
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
        if let Some(l) = logs.get(i) {
            if l.verdict == "unchained" {
                println!("  audit log: the row carries no chain columns");
            } else {
                println!(
                    "  audit log: instance {}, seq {}, leaf hash {}: {}",
                    l.instance_id, l.seq, l.leaf_hash, l.verdict
                );
                if let Some(note) = &l.checkpoint {
                    println!("    covered by checkpoint:");
                    for line in note.lines() {
                        println!("      {line}");
                    }
                }
            }
        }
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
