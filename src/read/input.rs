//! Input discovery for the `read` stage: command-line input arguments in, a sorted
//! list of [`InputFile`]s out (files, directories, globs, object URLs expanded by
//! [`super::object`], `-` for stdin; `.gz` and `.zst` recognised by name).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How an input's bytes are obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Encoding {
    /// A regular file, memory-mapped and split into chunks.
    Plain,
    /// gzip, decoded as a stream.
    Gzip,
    /// zstd, decoded as a stream.
    Zstd,
    /// Standard input, decoded as a stream.
    Stdin,
    /// A named pipe, `/dev/stdin` on a pipe, a process substitution: not a regular file,
    /// so read once, in order, as a stream (it has no size to split into chunks).
    Stream,
}

/// One input to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    /// Path as named (`-` for stdin).
    pub path: PathBuf,
    /// How to read it.
    pub encoding: Encoding,
}

impl InputFile {
    /// The name used in messages, the rejects file and manifests: [`path_text`].
    pub fn display_name(&self) -> String {
        path_text(&self.path)
    }

    /// Whether it is an object in object storage or on the web ([`super::object`]).
    pub fn is_object(&self) -> bool {
        super::object::is_object(&self.path)
    }

    /// An object's ETag as listed; none for a file.
    pub fn etag(&self) -> Option<String> {
        self.path.to_str().filter(|_| self.is_object()).and_then(|url| super::object::meta(url).ok()?.e_tag)
    }

    /// Its size in bytes as stored (as listed, for an object).
    pub fn size(&self) -> std::io::Result<u64> {
        match self.path.to_str().filter(|_| self.is_object()) {
            Some(url) => super::object::meta(url).map(|m| m.size),
            None => std::fs::metadata(&self.path).map(|m| m.len()),
        }
    }
}

/// A path as text, losslessly: bytes that are not UTF-8 as `\xNN`, backslashes,
/// control and invisible characters escaped ([`super::format::escape`]), so two files
/// never share a recorded name and [`text_path`] finds the file again.
pub fn path_text(path: &Path) -> String {
    super::format::escape(path.as_os_str().as_encoded_bytes())
}

/// The path a [`path_text`] stands for.
pub fn text_path(text: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(super::format::unescape(text)))
}

/// Expands input arguments into files, in sorted path order (stdin last), each file
/// once (by device and inode, whatever paths reach it), so the same set of inputs
/// always gives the same run.
pub fn resolve_inputs(args: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut objects: Vec<PathBuf> = Vec::new();
    let mut stdin = false;
    for path in args {
        if path.as_os_str() == "-" {
            stdin = true;
            continue;
        }
        let arg = path_text(path);
        if let Some(url) = path.to_str().filter(|p| super::object::is_url(p)) {
            objects.extend(super::object::expand(url)?.into_iter().map(PathBuf::from));
        } else if path.is_dir() {
            let found = list_dir(path)?;
            if found.is_empty() {
                return Err(Error::NoInput(format!("directory '{arg}' (it holds no regular file)")));
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.to_path_buf());
        } else if let Some(pattern) = path.to_str().filter(|p| p.contains(['*', '?', '['])) {
            let found = expand_glob(pattern)?;
            if found.is_empty() {
                return Err(Error::NoInput(format!("pattern '{arg}'")));
            }
            files.extend(found);
        } else {
            return Err(Error::Usage(format!("input file '{arg}' does not exist")));
        }
    }
    files.sort();
    files.dedup();
    // One file reached by several paths (a `**` glob through a `current -> 2026-11`
    // link, or around a symlink loop) is read once, under its first path in sorted order.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(f).map_or(true, |m| seen.insert((m.dev(), m.ino())))
    });
    objects.sort();
    objects.dedup();
    // Objects after local files, each group in sorted order.
    let local = files.len();
    files.extend(objects);
    let mut inputs: Vec<InputFile> = files
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let regular = i >= local || std::fs::metadata(&path).is_ok_and(|m| m.is_file());
            let encoding = match path.extension().and_then(|e| e.to_str()) {
                Some("gz") => Encoding::Gzip,
                Some("zst") => Encoding::Zstd,
                _ if !regular => Encoding::Stream,
                _ => Encoding::Plain,
            };
            InputFile { path, encoding }
        })
        .collect();
    if stdin {
        inputs.push(InputFile { path: PathBuf::from("-"), encoding: Encoding::Stdin });
    }
    Ok(inputs)
}

/// Whether `path` is something mrpipe itself wrote: a manifest, a rejects file, or a
/// published table (a link into a `.mrpipe` generation store). A directory that is
/// both an input and an output then never rereads its own outputs.
pub fn is_own_output(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.ends_with(".manifest.json")
        || name.ends_with(".rejects.tsv")
        || std::fs::read_link(path).is_ok_and(|t| t.components().any(|c| c.as_os_str() == ".mrpipe"))
}

/// Regular files directly inside `dir`, hidden ones and mrpipe's own outputs skipped.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let path = entry.path();
        if !hidden && path.is_file() && !is_own_output(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

fn expand_glob(pattern: &str) -> Result<Vec<PathBuf>> {
    let paths = glob::glob(pattern).map_err(|e| Error::Usage(format!("bad glob pattern '{pattern}': {e}")))?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|e| Error::io(e.path().to_path_buf(), std::io::Error::other(e.to_string())))?;
        if path.is_file() && !is_own_output(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_globs_sorted_and_hidden_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.tsv", "a.tsv.gz", ".hidden", "c.zst"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let d = dir.path().display().to_string();
        let got = resolve_inputs(&[PathBuf::from(&d), PathBuf::from(format!("{d}/*.tsv"))]).unwrap();
        let names: Vec<(String, Encoding)> =
            got.iter().map(|f| (f.path.file_name().unwrap().to_string_lossy().into_owned(), f.encoding)).collect();
        assert_eq!(
            names,
            vec![
                ("a.tsv.gz".into(), Encoding::Gzip),
                ("b.tsv".into(), Encoding::Plain),
                ("c.zst".into(), Encoding::Zstd)
            ]
        );
        assert!(matches!(resolve_inputs(&[PathBuf::from(format!("{d}/*.csv"))]), Err(Error::NoInput(_))));
        assert!(matches!(resolve_inputs(&[PathBuf::from(format!("{d}/missing.tsv"))]), Err(Error::Usage(_))));
    }
}
