//! Spilling shuffle: (key, count) records in, hash partitions on disk out, then each
//! partition reduced to a sorted run, and the runs merged into one sorted stream.
//!
//! This is how a job finishes on data larger than memory: map tasks drain their
//! combiners here whenever they outgrow their share of the budget; every record of
//! a key lands in one partition file, so one partition at a time can be counted in
//! memory. Files live in a hidden temporary directory removed when the last holder
//! (writer, partitions, or merge stream) is dropped, also on error.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tempfile::TempDir;

use super::partition_of_hash;
use crate::error::{Error, Result};
use crate::map::Combiner;

/// Partition files being appended to by map tasks.
pub struct SpillWriter {
    dir: Arc<TempDir>,
    files: Vec<Mutex<BufWriter<File>>>,
}

/// Finished partition files.
pub struct SpillPartitions {
    dir: Arc<TempDir>,
    paths: Vec<PathBuf>,
}

/// Files that stay open besides spill partitions: inputs, outputs, the lock, the
/// SQLite or server connections, the progress terminal.
const OTHER_OPEN_FILES: u64 = 64;

/// How many spill partitions may be open at once: the open-file limit (`RLIMIT_NOFILE`,
/// whose soft value is first raised to the hard one) less what the run keeps open
/// besides; at least 2. A `ulimit -n 256` cron environment then spills through fewer,
/// larger partitions instead of failing with "too many open files".
pub fn max_open_partitions() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 256;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    usize::try_from(soft.saturating_sub(OTHER_OPEN_FILES).max(2)).unwrap_or(usize::MAX)
}

/// A new spill directory in `parent`, removed when dropped. Its name carries the pid,
/// so the next run can remove it if this process is killed (see `lock`).
pub fn spill_dir(parent: &Path) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    tempfile::Builder::new()
        .prefix(&format!(".mrpipe-spill-{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))
}

impl SpillWriter {
    /// Creates `partitions` empty partition files in a new temporary directory under `parent`.
    pub fn new(parent: &Path, partitions: usize) -> Result<SpillWriter> {
        let dir = spill_dir(parent)?;
        let mut files = Vec::with_capacity(partitions);
        for p in 0..partitions {
            let path = dir.path().join(format!("part-{p:05}"));
            let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
            files.push(Mutex::new(BufWriter::with_capacity(64 * 1024, file)));
        }
        Ok(SpillWriter { dir: Arc::new(dir), files })
    }

    /// Moves every entry of `combiner` to its partition file, leaving it empty.
    pub fn drain(&self, combiner: &mut Combiner<String, u64>) -> Result<()> {
        let partitions = self.files.len();
        let mut grouped: Vec<Vec<u8>> = vec![Vec::new(); partitions];
        for e in combiner.drain() {
            encode(&mut grouped[partition_of_hash(e.hash, partitions)], &e.key, e.acc);
        }
        for (p, bytes) in grouped.into_iter().enumerate() {
            if bytes.is_empty() {
                continue;
            }
            // A poisoned lock means another task panicked mid-write; its data is unusable.
            let mut file = self.files[p].lock().map_err(|_| Error::sink("spill", "a spill writer panicked"))?;
            file.write_all(&bytes).map_err(|e| Error::io(self.dir.path(), e))?;
        }
        Ok(())
    }

    /// Flushes every partition file.
    pub fn finish(self) -> Result<SpillPartitions> {
        let mut paths = Vec::with_capacity(self.files.len());
        for (p, file) in self.files.into_iter().enumerate() {
            let mut file = file.into_inner().map_err(|_| Error::sink("spill", "a spill writer panicked"))?;
            file.flush().map_err(|e| Error::io(self.dir.path(), e))?;
            paths.push(self.dir.path().join(format!("part-{p:05}")));
        }
        Ok(SpillPartitions { dir: self.dir, paths })
    }
}

impl SpillPartitions {
    /// Number of partitions.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are no partitions.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Counts partition `p` in memory, keeps the keys `keep` accepts, and writes them
    /// sorted to a run file (replacing the partition file, to free its disk space).
    pub fn reduce_to_run(&self, p: usize, keep: &(dyn Fn(u64) -> bool + Sync)) -> Result<PathBuf> {
        let path = &self.paths[p];
        let mut merged: Combiner<String, u64> = Combiner::default();
        {
            let mut reader = RecordReader::open(path)?;
            while let Some((key, count)) = reader.next_record()? {
                *merged.entry_owned(key) += count;
            }
        }
        let mut entries: Vec<(String, u64)> =
            merged.into_entries().filter(|e| keep(e.acc)).map(|e| (e.key, e.acc)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let run = path.with_extension("run");
        let mut out = BufWriter::new(File::create(&run).map_err(|e| Error::io(&run, e))?);
        let mut buf = Vec::new();
        for (key, count) in &entries {
            buf.clear();
            encode(&mut buf, key, *count);
            out.write_all(&buf).map_err(|e| Error::io(&run, e))?;
        }
        out.flush().map_err(|e| Error::io(&run, e))?;
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        Ok(run)
    }

    /// Merges sorted runs (keys are disjoint across runs) into one sorted stream.
    pub fn merge_runs(&self, runs: &[PathBuf]) -> Result<MergedRuns> {
        let mut readers = Vec::with_capacity(runs.len());
        let mut heap = BinaryHeap::with_capacity(runs.len());
        for (i, run) in runs.iter().enumerate() {
            let mut reader = RecordReader::open(run)?;
            if let Some((key, count)) = reader.next_record()? {
                heap.push(Reverse((key, count, i)));
            }
            readers.push(reader);
        }
        Ok(MergedRuns { _dir: self.dir.clone(), readers, heap })
    }
}

/// A sorted stream of (key, count) over all runs; holds the temporary directory alive.
pub struct MergedRuns {
    _dir: Arc<TempDir>,
    readers: Vec<RecordReader>,
    heap: BinaryHeap<Reverse<(String, u64, usize)>>,
}

impl Iterator for MergedRuns {
    type Item = Result<(String, u64)>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((key, count, i)) = self.heap.pop()?;
        match self.readers[i].next_record() {
            Ok(Some((k, c))) => self.heap.push(Reverse((k, c, i))),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok((key, count)))
    }
}

/// Record layout: key length (u32 LE), key bytes, count (u64 LE).
fn encode(buf: &mut Vec<u8>, key: &str, count: u64) {
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
}

struct RecordReader {
    path: PathBuf,
    reader: BufReader<File>,
}

impl RecordReader {
    fn open(path: &Path) -> Result<RecordReader> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(RecordReader { path: path.to_path_buf(), reader: BufReader::with_capacity(256 * 1024, file) })
    }

    fn next_record(&mut self) -> Result<Option<(String, u64)>> {
        let io = |e| Error::io(&self.path, e);
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io(e)),
        }
        let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
        self.reader.read_exact(&mut key).map_err(io)?;
        let mut count = [0u8; 8];
        self.reader.read_exact(&mut count).map_err(io)?;
        // Keys were written from `&str`, so they are valid UTF-8 unless the file was damaged.
        let key = String::from_utf8(key)
            .map_err(|_| Error::sink("spill", format!("{}: damaged record", self.path.display())))?;
        Ok(Some((key, u64::from_le_bytes(count))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_reduce_merge_counts_and_sorts() {
        let parent = tempfile::tempdir().unwrap();
        let writer = SpillWriter::new(parent.path(), 5).unwrap();
        for round in 0..3 {
            let mut c: Combiner<String, u64> = Combiner::default();
            for i in 0..100 {
                if round < 2 || i % 2 == 0 {
                    *c.entry(format!("u{i:03}").as_str()) += 1;
                }
            }
            writer.drain(&mut c).unwrap();
            assert!(c.is_empty());
        }
        let parts = writer.finish().unwrap();
        let runs: Vec<PathBuf> = (0..parts.len()).map(|p| parts.reduce_to_run(p, &|c| c == 2).unwrap()).collect();
        let merged: Vec<(String, u64)> = parts.merge_runs(&runs).unwrap().map(Result::unwrap).collect();
        let want: Vec<(String, u64)> = (0..100).filter(|i| i % 2 == 1).map(|i| (format!("u{i:03}"), 2)).collect();
        assert_eq!(merged, want);
        drop(parts);
        let dir = runs[0].parent().unwrap().to_path_buf();
        drop(merged);
        assert!(!dir.exists(), "spill directory was not removed");
    }
}
