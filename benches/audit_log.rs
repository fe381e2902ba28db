//! The audit log's per-row cost on the writer: encode a row, hash its leaf (the chain link) and
//! push it into the Merkle frontier; and the cost of the root a checkpoint needs.
//! Run: `cargo bench --bench audit_log` (criterion reports elements/s = rows/s).

use std::hint::black_box;

use criterion::{criterion_main, BatchSize, Criterion, Throughput};
use pension_gateway::audit::{AuditLeaf, ChainHead, Frontier, SignedEvidence};

fn row(i: u64) -> AuditLeaf {
    AuditLeaf {
        instance_id: String::new(),
        seq: 0,
        prev_hash: [0; 32],
        request_id: format!("9c1e0b6e-5b7e-4c55-9a6b-{i:012}"),
        channel: "wechat".into(),
        outcome: "OK".into(),
        http_status: 200,
        received_at_ms: 1_700_000_000_000 + i as i64,
        bank_key_version: 2,
        wechat_key_version: Some(1),
        id_digest: Some([0x5a; 32]),
        pension_status: Some(1),
        request: Some(SignedEvidence {
            nonce: "5f270f2ff52b0c67dd47cd5c3ee17e91".into(),
            timestamp: "1700000000".into(),
            digest: [0x11; 32],
            signature: [0x22; 64],
        }),
        response: Some(SignedEvidence {
            nonce: "0b1e0c7d5d6f4e1a9e2c3b4a5f6e7d8c".into(),
            timestamp: "1700000001".into(),
            digest: [0x33; 32],
            signature: [0x44; 64],
        }),
    }
}

const BATCH: u64 = 1_000;

fn append(c: &mut Criterion) {
    let rows: Vec<AuditLeaf> = (0..BATCH).map(row).collect();
    let mut group = c.benchmark_group("audit_log");
    group.throughput(Throughput::Elements(BATCH));
    // One batch of rows: chain link (encode + SM3 leaf hash) and frontier push, then the root a
    // checkpoint of the batch would sign.
    group.bench_function("link+push+root per 1000 rows", |b| {
        b.iter_batched(
            || {
                (
                    ChainHead::genesis("gw-bench").unwrap(),
                    Frontier::new(),
                    rows.clone(),
                )
            },
            |(mut head, mut frontier, mut rows)| {
                for r in &mut rows {
                    frontier.push(head.link(r).unwrap());
                }
                black_box(frontier.root())
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The criterion group, kept in a private module: `criterion_group!` makes its function `pub`
/// and gives it no documentation.
mod group {
    use super::{append, Criterion};
    criterion::criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
        targets = append
    }
}
criterion_main!(group::benches);
