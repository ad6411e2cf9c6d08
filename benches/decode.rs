//! Criterion micro-benchmarks of the read and map hot paths (issue 10), not run by CI
//! as benchmarks (`cargo test` runs each once on a small block, as a smoke test):
//!
//! - `decode/<format>`: frame + validate + build Arrow columns of one 64 MiB block of
//!   `gen-data` lines, reported in bytes/s;
//! - `combine/<keys>`: folding decoded keys into a [`Combiner`] (hash, probe, insert),
//!   for url-dedup's ~50%-duplicate URLs and sales-rank's `category \t product` keys.
//!
//! `cargo bench --bench decode` (`-- decode/sales` for one). The blocks are generated
//! once into the target directory by the `gen-data` binary with a fixed seed.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mrpipe::map::Combiner;
use mrpipe::read::decode::{Chunk, ChunkId, ChunkReport, decode_chunk};
use mrpipe::read::format::{ACCESS_LOG, Format, SALES, TRANSACTIONS};

/// Bytes per benchmarked block: 64 MiB as benchmarks, 1 MiB as a `cargo test` smoke run.
fn block_bytes() -> usize {
    if std::env::args().any(|a| a == "--bench") { 64 << 20 } else { 1 << 20 }
}

/// `block_bytes()` of whole lines of `gen-data KIND` (seed 1), generated once.
fn block(kind: &str) -> Vec<u8> {
    let bytes = block_bytes();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-blocks");
    std::fs::create_dir_all(&dir).expect("create the block directory");
    let path = dir.join(format!("{kind}-{bytes}"));
    if !path.exists() {
        // ~60-120 bytes a line: twice the lines needed, cut below at a line end.
        let rows = (bytes / 30).to_string();
        let tmp = dir.join(format!("{kind}-{bytes}.tmp"));
        let status = Command::new(env!("CARGO_BIN_EXE_gen-data"))
            .args([kind, "--rows", &rows, "--seed", "1", "--out"])
            .arg(&tmp)
            .status()
            .expect("run gen-data");
        assert!(status.success(), "gen-data {kind} failed");
        std::fs::rename(&tmp, &path).expect("keep the block");
    }
    let mut data = std::fs::read(&path).expect("read the block");
    // Without the first line (the TSV header): the block is decoded as a later chunk of a file.
    let header = data.iter().position(|&b| b == b'\n').expect("a header line") + 1;
    data.drain(..header);
    assert!(data.len() >= bytes, "gen-data {kind} wrote only {} bytes", data.len());
    let end = data[..bytes].iter().rposition(|&b| b == b'\n').expect("a line end") + 1;
    data.truncate(end);
    data
}

/// Decodes `data` as one later chunk of a file (no header, no BOM) into `columns`'
/// arrays (all when `None`), returning the rows.
fn decode(format: &Format, columns: Option<&[&str]>, data: &[u8]) -> usize {
    let mut report = ChunkReport::default();
    let mut rows = 0;
    let chunk = Chunk { id: ChunkId { file: 0, index: 1 }, data, overlong: None };
    let projection = format.projection(columns).expect("known columns");
    decode_chunk(chunk, format, projection, &mut report, &mut |batch| {
        rows += black_box(batch).num_rows();
        Ok(())
    })
    .expect("decode");
    assert_eq!(report.stats.bad, 0, "gen-data writes good lines only");
    rows
}

fn decoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    // Every column, then (`:job`) only the columns that job's map reads.
    let sales_rank: &[&str] = &["timestamp", "product_id", "category_id", "quantity", "total_price"];
    let hit_counts: &[&str] = &["timestamp", "url"];
    let formats = [
        ("sales", "sales", Format::Tsv(SALES), None),
        ("sales:sales-rank", "sales", Format::Tsv(SALES), Some(sales_rank)),
        ("transactions", "spending", Format::Tsv(TRANSACTIONS), None),
        ("access-tsv", "access-tsv", Format::Tsv(ACCESS_LOG), None),
        ("access-tsv:hit-counts", "access-tsv", Format::Tsv(ACCESS_LOG), Some(hit_counts)),
        ("clf", "access-clf", Format::Clf, None),
        ("clf:hit-counts", "access-clf", Format::Clf, Some(hit_counts)),
        ("urls", "urls", Format::UrlList, None),
    ];
    for (name, kind, format, columns) in formats {
        let data = block(kind);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| b.iter(|| decode(&format, columns, &data)));
    }
    group.finish();
}

/// The text of every line's fields `fields` (0-based, joined by TAB) in `kind`'s block.
fn keys(kind: &str, fields: &[usize]) -> Vec<String> {
    let data = block(kind);
    data.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let line = std::str::from_utf8(line).expect("gen-data writes UTF-8");
            let parts: Vec<&str> = line.split('\t').collect();
            fields.iter().map(|&i| parts[i]).collect::<Vec<_>>().join("\t")
        })
        .collect()
}

fn combiners(c: &mut Criterion) {
    let mut group = c.benchmark_group("combine");
    group.sample_size(10);
    for (name, kind, fields) in [("urls", "urls", &[0][..]), ("sales-keys", "sales", &[2, 1][..])] {
        let keys = keys(kind, fields);
        group.throughput(Throughput::Elements(keys.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut groups: Combiner<String, u64> = Combiner::default();
                for key in &keys {
                    *groups.entry(key.as_str()) += 1;
                }
                groups.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decoders, combiners);
criterion_main!(benches);
