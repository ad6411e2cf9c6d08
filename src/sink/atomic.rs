//! Atomic file publication for file sinks: write to a hidden temporary file in the
//! destination's directory, fsync, and rename over the destination only on commit.
//! A temporary that is never published is removed when dropped; one left by a killed
//! process is named `.<file>.mrpipe-tmp-<pid>` and never mistaken for output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written under a temporary name.
pub struct StagedFile {
    tmp: PathBuf,
    dest: PathBuf,
    published: bool,
}

impl StagedFile {
    /// Creates the temporary file for `dest` (and `dest`'s directory if missing).
    pub fn create(dest: &Path) -> Result<(StagedFile, BufWriter<File>)> {
        let dir = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.mrpipe-tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let staged = StagedFile {
            tmp,
            dest: dest.to_path_buf(),
            published: false,
        };
        Ok((staged, BufWriter::with_capacity(1 << 20, file)))
    }

    /// Flushes and fsyncs the written data; call before [`StagedFile::publish`].
    pub fn seal(&self, writer: BufWriter<File>) -> Result<()> {
        let file = writer.into_inner().map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))
    }

    /// Renames the temporary file over the destination and fsyncs the directory.
    pub fn publish(mut self) -> Result<()> {
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

/// Writes a whole staged file with `write`, then seals it.
pub fn write_staged(dest: &Path, write: impl FnOnce(&mut BufWriter<File>) -> Result<()>) -> Result<StagedFile> {
    let (staged, mut writer) = StagedFile::create(dest)?;
    write(&mut writer)?;
    writer.flush().map_err(|e| Error::io(dest, e))?;
    staged.seal(writer)?;
    Ok(staged)
}

/// Publishes staged files in order; returns their final paths.
pub fn publish_all(staged: Vec<StagedFile>) -> Result<Vec<String>> {
    let mut published = Vec::with_capacity(staged.len());
    for file in staged {
        published.push(file.dest().display().to_string());
        file.publish()?;
    }
    Ok(published)
}
