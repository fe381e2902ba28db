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
//!
//! Exit codes of `audit prune`: 0 pruned (or nothing to prune); 1 the log is damaged, nothing
//! removed; 2 bad configuration; 3 it could not run or stopped midway (a re-run completes it).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use pension_gateway::audit::check::{
    log_proof, parse_witness, verify_store, LogProof, Summary, Witnessed,
};
use pension_gateway::audit::merkle::Hash;
use pension_gateway::audit::prove::{prove, PublicKeys, RowProof, SignatureProof, Verdict};
use pension_gateway::audit::Sm2CheckpointVerifier;
use pension_gateway::audit::{Prune, SignedCheckpoint, SignedPrune};
use pension_gateway::config::Settings;
use pension_gateway::server::{load_keys, open_store, open_witness};
use pension_gateway::store::{NewPrune, Store};

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
    /// Remove old audit rows with a signed prune record (retention): per instance, the rows up
    /// to the newest checkpoint made before `--before` (never the instance's newest
    /// checkpoint), after `audit verify` found the whole log intact. The record (instance, rows
    /// removed, the chain hash of the last one, the checkpoint's root) is signed by the active
    /// bank key and written to `audit_prunes` and the witness file before any row is deleted,
    /// so `audit verify` of what remains passes and a deletion without a record does not.
    /// Exit 0 done, 1 damaged log (nothing removed), 3 cannot run or stopped midway.
    Prune {
        /// Remove rows covered by checkpoints made before this time (RFC 3339, e.g.
        /// `2026-06-01T00:00:00Z`, or Unix milliseconds).
        #[arg(long)]
        before: String,
        /// Only this instance (default: every instance).
        #[arg(long)]
        instance: Option<String>,
        /// Say what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
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

/// Per instance: where it was pruned to (0: never), from the database's prune records.
async fn pruned_to(store: &Store, instance: &str) -> anyhow::Result<u64> {
    Ok(store
        .audit_prunes(Some(instance))
        .await?
        .last()
        .map_or(0, |p| u64::try_from(p.end_seq).unwrap_or(0)))
}

/// Appends the witness lines of prune records the database holds and the file lacks (a run
/// that stopped between the record and the append). Only records whose signature verifies.
async fn recover_prune_lines(
    store: &Store,
    witness: &pension_gateway::store::Witness,
    witnessed: &Witnessed,
    verifier: &Sm2CheckpointVerifier,
) -> anyhow::Result<usize> {
    let mut appended = 0;
    for row in store.audit_prunes(None).await? {
        let Ok(p) = SignedPrune::from_note(&row.note) else {
            continue; // audit verify names it
        };
        if witnessed.prunes.contains(&p) || p.verify(verifier).is_err() {
            continue;
        }
        witness
            .append(&p.witness_line()?)
            .with_context(|| format!("appending to {}", witness.path().display()))?;
        eprintln!(
            "note: instance {}: appended the witness line of the prune up to {} (an earlier run \
             stopped before it)",
            p.prune.instance_id, p.prune.end
        );
        appended += 1;
    }
    Ok(appended)
}

/// The cut for `instance`: its newest checkpoint made before `before_ms` that is beyond the
/// last prune and is not its newest checkpoint.
fn choose_cut(
    checkpoints: &[SignedCheckpoint],
    pruned: u64,
    before_ms: i64,
) -> Option<&SignedCheckpoint> {
    let newest = checkpoints.iter().map(|c| c.checkpoint.size).max()?;
    checkpoints
        .iter()
        .filter(|c| {
            let c = &c.checkpoint;
            c.size > pruned && c.size < newest && c.time_ms < before_ms
        })
        .max_by_key(|c| c.checkpoint.size)
}

async fn prune(settings: &Settings, before: &str, only: Option<&str>, dry_run: bool) -> ExitCode {
    let before_ms = match parse_since(before) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace("--since", "--before"));
            return ExitCode::from(2);
        }
    };
    let run = async {
        let keys = PublicKeys::from_key_dir(&settings.keys.dir)
            .with_context(|| format!("public keys of {}", settings.keys.dir.display()))?;
        let verifier = checkpoint_verifier(&keys)?;
        let ring = load_keys(settings).context("the key ring (the prune record is signed)")?;
        let path = &settings.audit.witness_file;
        let witness = open_witness(settings)?;
        let store = open_store(settings).await?;
        let read = || -> anyhow::Result<Result<Witnessed, _>> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("witness file {}", path.display()))?;
            Ok(parse_witness(&text))
        };
        let witnessed = match read()? {
            Ok(w) => w,
            Err(f) => return Ok(Err(f)),
        };
        if !dry_run {
            recover_prune_lines(&store, &witness, &witnessed, &verifier).await?;
        }
        // Again, with any line just appended.
        let witnessed = match read()? {
            Ok(w) => w,
            Err(f) => return Ok(Err(f)),
        };
        let summary: Summary =
            match verify_store(&store, &witnessed, &verifier, None, &mut |_, _| {})
                .await
                .context("reading the audit log")?
            {
                Ok(s) => s,
                Err(f) => return Ok(Err(f)),
            };
        for inst in &summary.instances {
            let instance = inst.instance.as_str();
            if only.is_some_and(|o| o != instance) {
                continue;
            }
            let pruned = pruned_to(&store, instance).await?;
            let checkpoints: Vec<SignedCheckpoint> = store
                .audit_checkpoints(instance)
                .await?
                .iter()
                .filter_map(|c| SignedCheckpoint::from_note(&c.note).ok())
                .collect();
            let Some(cut) = choose_cut(&checkpoints, pruned, before_ms) else {
                if !dry_run && pruned > 0 {
                    // Rows an interrupted run left below its cut.
                    let n = store.audit_delete_before(instance, pruned).await?;
                    if n > 0 {
                        println!("instance {instance}: removed {n} row(s) an earlier prune left below {pruned}");
                    }
                }
                println!("instance {instance}: nothing to prune (no checkpoint before the time, beyond the last prune and older than the newest)");
                continue;
            };
            let end = cut.checkpoint.size;
            let last = store.audit_chain_page(instance, end - 1, 1).await?;
            let last_hash: Hash = match last.first().and_then(|r| r.chain.as_ref()) {
                Some(c) if c.seq == end - 1 => c.leaf_hash,
                _ => anyhow::bail!(
                    "instance {instance}: row {} vanished during the prune",
                    end - 1
                ),
            };
            if dry_run {
                println!(
                    "instance {instance}: would remove rows {pruned}..{end} (cut at the checkpoint of size {end}, made at {} ms)",
                    cut.checkpoint.time_ms
                );
                continue;
            }
            let snapshot = ring.snapshot();
            let version = snapshot.active_version();
            let key = snapshot
                .bank_key(version)
                .with_context(|| format!("no active bank key version {version}"))?;
            let signed = Prune {
                instance_id: instance.to_owned(),
                first: pruned,
                end,
                last_hash,
                root: cut.checkpoint.root,
                time_ms: chrono::Utc::now().timestamp_millis(),
            }
            .sign(key)?;
            let note = signed.to_note()?;
            store
                .audit_record_prune(&NewPrune {
                    instance_id: instance,
                    first_seq: i64::try_from(pruned)?,
                    end_seq: i64::try_from(end)?,
                    time_ms: signed.prune.time_ms,
                    key_version: i32::try_from(signed.key_version)?,
                    note: &note,
                })
                .await
                .context("writing the prune record")?;
            let line = signed.witness_line()?;
            witness.append(&line).with_context(|| {
                format!(
                    "appending the prune record to {} (nothing was deleted; run audit prune \
                     again to append it and go on)",
                    path.display()
                )
            })?;
            let n = store
                .audit_delete_before(instance, end)
                .await
                .context("deleting the pruned rows (run audit prune again to finish)")?;
            println!(
                "instance {instance}: removed rows {pruned}..{end} ({n} row(s)), cut at the checkpoint of size {end}; prune record signed by bank-v{}",
                signed.key_version
            );
        }
        Ok::<_, anyhow::Error>(Ok(()))
    };
    match run.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(finding)) => {
            println!("DAMAGED: {finding}");
            println!("nothing was pruned: the log must verify before rows are removed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: audit prune: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// Runs an `audit` command.
pub async fn run(cmd: AuditCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Prune {
            before,
            instance,
            dry_run,
        } => {
            if settings.server.demo {
                eprintln!(
                    "error: `audit prune` removes the bank's audit rows and needs its configuration \
                     (--config or GATEWAY_CONFIG)"
                );
                return Ok(ExitCode::from(2));
            }
            Ok(prune(settings, &before, instance.as_deref(), dry_run).await)
        }
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
