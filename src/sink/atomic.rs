//! Atomic replacement of one file (the rejects file, SQLite's JSON manifest copy):
//! write to a hidden temporary file in the destination's directory (hashing the bytes
//! with BLAKE3 on the way), fsync, and rename over the destination. A run's tables
//! and manifest are published together by [`super::generation`] instead. A temporary that is never published is
//! removed when dropped; one left by a killed process is named
//! `.<file>.mrpipe-tmp-<pid>`, never mistaken for output, and removed by the next run.
//! Devices, pipes and links are written in place instead (see [`StagedFile::create`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// A file being written under a temporary name.
pub struct StagedFile {
    tmp: PathBuf,
    dest: PathBuf,
    published: bool,
    /// The destination is a device or FIFO (`/dev/null`, `/dev/stderr`): written in place,
    /// never renamed over or removed.
    in_place: bool,
}

/// The writer of a staged file: buffered, and hashing every byte written.
pub struct StagedWriter {
    inner: BufWriter<File>,
    hasher: blake3::Hasher,
}

impl Write for StagedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl StagedWriter {
    /// A buffered, hashing writer to `file`.
    pub fn new(file: File) -> StagedWriter {
        StagedWriter { inner: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new() }
    }

    /// Flushes, fsyncs unless `in_place` (a device), and returns the hash of the bytes written.
    pub fn finish(self, path: &Path, in_place: bool) -> Result<blake3::Hash> {
        let file = self.inner.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
        if !in_place {
            file.sync_all().map_err(|e| Error::io(path, e))?;
        }
        Ok(self.hasher.finalize())
    }
}

impl StagedFile {
    /// Creates the temporary file for `dest` (and `dest`'s directory if missing).
    ///
    /// A device or pipe, also through a symbolic link (`/dev/stderr`), is written in
    /// place, never replaced. A link to a regular file is refused: a rename would put a
    /// plain file where the link was (as root, over `/dev/stdout`, breaking every
    /// program's standard output), and writing through it could truncate an input or
    /// a log that standard output appends to.
    pub fn create(dest: &Path) -> Result<(StagedFile, StagedWriter)> {
        let link = std::fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink());
        let target = std::fs::metadata(dest);
        if link && target.as_ref().is_ok_and(std::fs::Metadata::is_file) {
            let message =
                "a symbolic link to a regular file: neither replaced nor written through; give the file's own path";
            return Err(Error::io(dest, std::io::Error::other(message)));
        }
        if target.is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = std::fs::OpenOptions::new().write(true).open(dest).map_err(|e| Error::io(dest, e))?;
            let staged =
                StagedFile { tmp: dest.to_path_buf(), dest: dest.to_path_buf(), published: true, in_place: true };
            let writer = StagedWriter { inner: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new() };
            return Ok((staged, writer));
        }
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.mrpipe-tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let staged = StagedFile { tmp, dest: dest.to_path_buf(), published: false, in_place: false };
        Ok((staged, StagedWriter { inner: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new() }))
    }

    /// Flushes and fsyncs the written data; returns the BLAKE3 hash of the file's bytes.
    pub fn seal(&self, writer: StagedWriter) -> Result<blake3::Hash> {
        writer.finish(&self.tmp, self.in_place)
    }

    /// Renames the temporary file over the destination and fsyncs the directory.
    pub fn publish(mut self) -> Result<()> {
        if self.in_place {
            return Ok(());
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.published = true;
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Makes the rename durable; a directory that cannot be opened is not an error.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a whole staged file with `write`, then seals it; returns it with its hash.
pub fn write_staged(
    dest: &Path,
    write: impl FnOnce(&mut StagedWriter) -> Result<()>,
) -> Result<(StagedFile, blake3::Hash)> {
    let (staged, mut writer) = StagedFile::create(dest)?;
    write(&mut writer)?;
    writer.flush().map_err(|e| Error::io(dest, e))?;
    let hash = staged.seal(writer)?;
    Ok((staged, hash))
}

/// Replaces the file at `path` with the manifest as pretty JSON, atomically.
pub fn write_manifest_file(path: &Path, manifest: &Manifest) -> Result<()> {
    let json = manifest.to_json()?;
    let write = |w: &mut StagedWriter| w.write_all(json.as_bytes()).map_err(|e| Error::io(path, e));
    write_staged(path, write)?.0.publish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_written_in_place_not_replaced() {
        let (staged, mut w) = StagedFile::create(Path::new("/dev/null")).unwrap();
        w.write_all(b"x").unwrap();
        staged.seal(w).unwrap();
        staged.publish().unwrap();
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert!(!meta.is_file(), "/dev/null must stay a device");
    }

    #[test]
    fn a_link_to_a_regular_file_is_refused_neither_replaced_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("input.tsv");
        std::fs::write(&target, "an input\n").unwrap();
        let link = dir.path().join("rejects.tsv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_staged(&link, |w| w.write_all(b"new\n").map_err(|e| Error::io(&link, e))).err().unwrap();
        assert!(err.to_string().contains("symbolic link to a regular file"), "{err}");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "still a link");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "an input\n", "its target untouched");
    }
}
