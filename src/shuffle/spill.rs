//! Spilling shuffle: map tasks' (key, partial aggregate) records in, hash partitions
//! on disk out, then one partition at a time read back and merged in memory.
//!
//! This is how a job finishes on data larger than `--memory-limit`: map tasks drain
//! their combiners here whenever they outgrow their share of the budget; every record
//! of a key lands in one partition file, so one partition at a time can be reduced in
//! memory. Records are framed as a u32 length then the key's and the aggregate's
//! [`State`] encodings. Files live in a hidden temporary directory, created on the
//! first spill and removed when the last holder (writer or partitions) is dropped,
//! also on error.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::partition_of_hash;
use crate::error::{Error, Result};
use crate::map::{Combiner, State};
use crate::scratch::{Scratch, scratch_dir};

/// Partition files being appended to by map tasks; nothing is created before the first spill.
pub struct SpillWriter {
    parent: PathBuf,
    dir: OnceLock<Arc<Scratch>>,
    /// Held while the directory is made, so only one task makes it.
    making: Mutex<()>,
    files: Vec<Mutex<Option<BufWriter<File>>>>,
    buffer_bytes: usize,
}

/// Finished partition files.
pub struct SpillPartitions {
    _dir: Arc<Scratch>,
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

impl SpillWriter {
    /// A writer of `partitions` partition files under `parent`, each buffered with
    /// `buffer_bytes` (4 KiB to 64 KiB) once it exists.
    pub fn new(parent: &Path, partitions: usize, buffer_bytes: usize) -> SpillWriter {
        SpillWriter {
            parent: parent.to_path_buf(),
            dir: OnceLock::new(),
            making: Mutex::new(()),
            files: (0..partitions).map(|_| Mutex::new(None)).collect(),
            buffer_bytes: buffer_bytes.clamp(4 << 10, 64 << 10),
        }
    }

    /// Whether anything was spilled.
    pub fn spilled(&self) -> bool {
        self.dir.get().is_some()
    }

    fn dir(&self) -> Result<&Arc<Scratch>> {
        if let Some(dir) = self.dir.get() {
            return Ok(dir);
        }
        // One task makes it while the others wait: a second directory made in a race
        // and dropped unused could be caught half made (no owner lock yet) by a kill,
        // and then outlive the run until the sweep's grace period ends.
        let _making = self.making.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(dir) = self.dir.get() {
            return Ok(dir);
        }
        let made = Arc::new(scratch_dir(&self.parent)?);
        Ok(self.dir.get_or_init(|| made))
    }

    /// Moves every entry of `combiner` to its partition file, leaving it empty.
    pub fn drain<K: std::hash::Hash + Eq + State, A: Default + State>(
        &self,
        combiner: &mut Combiner<K, A>,
    ) -> Result<()> {
        let partitions = self.files.len();
        let mut grouped: Vec<Vec<u8>> = vec![Vec::new(); partitions];
        let mut record = Vec::new();
        for e in combiner.drain() {
            record.clear();
            e.key.encode(&mut record);
            e.acc.encode(&mut record);
            let out = &mut grouped[partition_of_hash(e.hash, partitions)];
            // One record is a key from one input line and its aggregate: far below 4 GiB.
            out.extend_from_slice(&(record.len() as u32).to_le_bytes());
            out.extend_from_slice(&record);
        }
        let dir = self.dir()?;
        crate::failpoint::failpoint("spill-partitions");
        for (p, bytes) in grouped.into_iter().enumerate() {
            if bytes.is_empty() {
                continue;
            }
            // A poisoned lock means another task panicked mid-write; its data is unusable.
            let mut slot = self.files[p].lock().map_err(|_| Error::sink("spill", "a spill writer panicked"))?;
            if slot.is_none() {
                let path = dir.path().join(format!("part-{p:05}"));
                let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
                *slot = Some(BufWriter::with_capacity(self.buffer_bytes, file));
            }
            if let Some(file) = slot.as_mut() {
                file.write_all(&bytes).map_err(|e| Error::io(dir.path(), e))?;
            }
        }
        Ok(())
    }

    /// Flushes every partition file; `None` when nothing was spilled.
    pub fn finish(self) -> Result<Option<SpillPartitions>> {
        let Some(dir) = self.dir.into_inner() else { return Ok(None) };
        let mut paths = Vec::with_capacity(self.files.len());
        for (p, file) in self.files.into_iter().enumerate() {
            let path = dir.path().join(format!("part-{p:05}"));
            let file = file.into_inner().map_err(|_| Error::sink("spill", "a spill writer panicked"))?;
            if let Some(mut file) = file {
                file.flush().map_err(|e| Error::io(&path, e))?;
                paths.push(path);
            }
        }
        Ok(Some(SpillPartitions { _dir: dir, paths }))
    }
}

impl SpillPartitions {
    /// Number of partition files (partitions no task wrote to have none).
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are no partition files.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Reads partition file `p` back and merges its records into one entry per key
    /// with `merge`, then removes the file to free its disk space.
    pub fn reduce<K, A>(&self, p: usize, merge: impl Fn(&mut A, A)) -> Result<Vec<(K, A)>>
    where
        K: std::hash::Hash + Eq + State,
        A: Default + State,
    {
        let path = &self.paths[p];
        let mut merged: Combiner<K, A> = Combiner::default();
        {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let mut reader = BufReader::with_capacity(256 * 1024, file);
            let mut record = Vec::new();
            while read_record(&mut reader, &mut record).map_err(|e| Error::io(path, e))? {
                let mut bytes = record.as_slice();
                let key = K::decode(&mut bytes)?;
                let acc = A::decode(&mut bytes)?;
                merge(merged.entry_owned(key), acc);
            }
        }
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        Ok(merged.into_entries().map(|e| (e.key, e.acc)).collect())
    }
}

/// Reads one length-framed record into `record`; false at the end of the file.
fn read_record(reader: &mut impl Read, record: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    record.clear();
    record.resize(u32::from_le_bytes(len) as usize, 0);
    reader.read_exact(record)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_partials_merge_into_one_entry_per_key_and_files_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        let writer = SpillWriter::new(parent.path(), 5, 0);
        assert!(!writer.spilled());
        for round in 0..3 {
            let mut c: Combiner<String, u64> = Combiner::default();
            for i in 0..100 {
                if round < 2 || i % 2 == 0 {
                    *c.entry(format!("u{i:03}").as_str()) += 1;
                }
            }
            writer.drain(&mut c).unwrap();
            assert!(c.is_empty());
            assert!(c.bytes() == 0, "a drained combiner holds no memory");
        }
        let parts = writer.finish().unwrap().unwrap();
        let mut merged: Vec<(String, u64)> =
            (0..parts.len()).flat_map(|p| parts.reduce(p, |a: &mut u64, b| *a += b).unwrap()).collect();
        merged.sort();
        let want: Vec<(String, u64)> = (0..100).map(|i| (format!("u{i:03}"), if i % 2 == 0 { 3 } else { 2 })).collect();
        assert_eq!(merged, want);
        let dir = parts.paths[0].parent().unwrap().to_path_buf();
        drop(parts);
        assert!(!dir.exists(), "spill directory was not removed");
    }

    #[test]
    fn nothing_spilled_creates_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let writer = SpillWriter::new(parent.path(), 64, 0);
        assert!(writer.finish().unwrap().is_none());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_partition_is_an_error() {
        let parent = tempfile::tempdir().unwrap();
        let writer = SpillWriter::new(parent.path(), 1, 0);
        let mut c: Combiner<String, u64> = Combiner::default();
        *c.entry("key") += 1;
        writer.drain(&mut c).unwrap();
        let parts = writer.finish().unwrap().unwrap();
        let len = std::fs::metadata(&parts.paths[0]).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&parts.paths[0]).unwrap().set_len(len - 3).unwrap();
        assert!(parts.reduce(0, |a: &mut u64, b| *a += b).map(|_: Vec<(String, u64)>| ()).is_err());
    }
}
