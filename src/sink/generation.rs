//! A unit's files published as one generation, so that a run's tables and manifest
//! appear together or not at all, whatever moment the process is killed at.
//!
//! Each unit of a file output (a job's run, or one period of it) has a store,
//! `<dir>/.mrpipe/<key>/`, of generation directories `g-<pid>-<nanos>/` holding
//! every table and the manifest of one run, and a symlink `current` naming the
//! published generation. The visible paths (`out/sales_rank.parquet`,
//! `out/_sales-rank.manifest.json`) are relative symlinks through `current`, made
//! once; publishing a run is then one `rename` of `current`, the commit point. Older
//! generations are removed after it (an open reader keeps its file). A visible path
//! that is a device (`/dev/null`) is written in place instead.
//!
//! Steps, each with a failpoint for the crash tests ([`failpoint`]): write and fsync
//! the generation (`publish-staged`), point the visible paths at `current`
//! (`publish-linked`; links of a first run dangle until the switch, and a regular
//! file left by an older mrpipe is replaced here), rename `current`
//! (`publish-switched`), remove other generations and links left dangling.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use super::atomic::StagedWriter;
use crate::error::{Error, Result};
use crate::failpoint::failpoint;

/// The hidden directory beside file outputs that holds their generations.
pub const STORE: &str = ".mrpipe";

/// `dir`, created if missing, as a canonical path (symlinks and `..` resolved).
pub fn canonical_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    path.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A generation being written; removed when dropped uncommitted.
pub struct Generation {
    store: PathBuf,
    name: String,
    /// Visible path and file name in the generation, for each file to link.
    links: Vec<(PathBuf, String)>,
    committed: bool,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// `to` relative to the directory `from` (both absolute and canonical).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel: PathBuf = from[common..].iter().map(|_| Component::ParentDir).collect();
    rel.extend(&to[common..]);
    rel
}

/// Replaces `path` by a symlink to `target`, atomically (a temporary link renamed over it).
/// A real directory there (a `current` copied with `cp -rL`) is removed first.
fn link(path: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(path).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(path).map_err(io(path))?;
    }
    let dir = parent_dir(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.mrpipe-tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn sync_dir(dir: &Path) {
    // Makes renames durable; a directory that cannot be opened is not an error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Generation {
    /// Starts a new generation in the store `store` (created if missing).
    pub fn start(store: PathBuf) -> Result<Generation> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("g-{}-{nanos}", std::process::id());
        std::fs::create_dir_all(store.join(&name)).map_err(io(&store))?;
        Ok(Generation { store, name, links: Vec::new(), committed: false })
    }

    /// Opens the file that appears at `visible` once committed: a writer that hashes
    /// what it writes, and whether it writes a device in place.
    pub fn create(&mut self, visible: &Path) -> Result<(StagedWriter, bool)> {
        if std::fs::metadata(visible).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = std::fs::OpenOptions::new().write(true).open(visible).map_err(io(visible))?;
            return Ok((StagedWriter::new(file), true));
        }
        let mut name = visible.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Partitions of several tables share a file name (`part-0.parquet`).
        if self.links.iter().any(|(_, taken)| *taken == name) {
            name = format!("{}-{name}", self.links.len());
        }
        let path = self.store.join(&self.name).join(&name);
        let file = File::create(&path).map_err(io(&path))?;
        self.links.push((visible.to_path_buf(), name));
        Ok((StagedWriter::new(file), false))
    }

    /// Writes a whole file of the generation with `write`; returns its hash.
    pub fn write(
        &mut self,
        visible: &Path,
        write: impl FnOnce(&mut StagedWriter) -> Result<()>,
    ) -> Result<blake3::Hash> {
        let (mut writer, in_place) = self.create(visible)?;
        write(&mut writer)?;
        writer.finish(visible, in_place)
    }

    /// Publishes the generation: links, then the switch of `current`, then cleanup.
    pub fn commit(mut self) -> Result<()> {
        sync_dir(&self.store.join(&self.name));
        failpoint("publish-staged");
        let store = std::fs::canonicalize(&self.store).map_err(io(&self.store))?;
        let current = store.join("current");
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (visible, name) in &self.links {
            let dir = canonical_dir(&parent_dir(visible))?;
            link(visible, &relative(&dir, &current.join(name)))?;
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for dir in &dirs {
            sync_dir(dir);
        }
        failpoint("publish-linked");
        link(&current, Path::new(&self.name))?;
        sync_dir(&store);
        self.committed = true;
        failpoint("publish-switched");
        remove_old_generations(&store);
        if let (Some(job), Some(output)) = (job_store_name(&store), output_of(&store)) {
            remove_dangling_links_under(&output, &job);
        }
        Ok(())
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(self.store.join(&self.name));
        }
    }
}

/// Removes the generations of `store` that `current` does not name (a replaced one,
/// or one of a killed run).
fn remove_old_generations(store: &Path) {
    let current = std::fs::read_link(store.join("current")).ok();
    let Ok(entries) = std::fs::read_dir(store) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("g-") && current.as_deref() != Some(Path::new(&name)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The name of the job store a path lies in: the component after `.mrpipe`.
fn job_store_name(path: &Path) -> Option<std::ffi::OsString> {
    let mut parts = path.components().map(|c| c.as_os_str());
    parts.find(|c| *c == STORE)?;
    parts.next().map(std::ffi::OsStr::to_os_string)
}

/// The output directory a store lies in: the one holding `.mrpipe`.
fn output_of(store: &Path) -> Option<PathBuf> {
    store.ancestors().find(|a| a.file_name().is_some_and(|n| n == STORE)).and_then(Path::parent).map(Path::to_path_buf)
}

/// [`remove_dangling_links`] in `output`, in its table directories and in their Hive
/// partitions (`<table>/<key>=<value>/`), removing partitions left empty.
fn remove_dangling_links_under(output: &Path, job: &std::ffi::OsStr) {
    remove_dangling_links(output, job);
    for table in subdirectories(output) {
        remove_dangling_links(&table, job);
        for partition in subdirectories(&table) {
            remove_dangling_links(&partition, job);
            if partition.file_name().is_some_and(|n| n.to_string_lossy().contains('=')) {
                // Fails, as wanted, unless the partition is empty.
                let _ = std::fs::remove_dir(&partition);
            }
        }
    }
}

/// The directories in `dir` that are not hidden (not the store, not a spill directory).
fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Removes the links in `dir` that go through the job store `job` and lead nowhere:
/// tables a later run of the job no longer writes. Links of other jobs are left alone
/// (one may be publishing for the first time, its links not yet resolving).
fn remove_dangling_links(dir: &Path, job: &std::ffi::OsStr) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if let Ok(target) = std::fs::read_link(&path)
            && job_store_name(&target).as_deref() == Some(job)
            && !path.exists()
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Cleans what killed runs of one job left in its stores (`store` is the job's, period
/// stores are its subdirectories) and the links they left dangling; the job's lock
/// must be held.
pub fn clean_job_store(store: &Path) -> Result<()> {
    if !store.is_dir() {
        return Ok(());
    }
    let mut stores = vec![store.to_path_buf()];
    for entry in std::fs::read_dir(store).map_err(io(store))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with("g-") && name != "current" {
            stores.push(entry.path());
        }
    }
    for s in &stores {
        remove_old_generations(s);
    }
    // The output directory holds the visible links, and period tables two levels down.
    let (Some(output), Some(job)) = (store.parent().and_then(Path::parent), store.file_name()) else { return Ok(()) };
    remove_dangling_links_under(output, job);
    Ok(())
}

/// Adds the run's manifest, as pretty JSON, at `visible`.
pub fn write_manifest(generation: &mut Generation, visible: &Path, manifest: &crate::manifest::Manifest) -> Result<()> {
    let json = manifest.to_json()?;
    generation.write(visible, |w| std::io::Write::write_all(w, json.as_bytes()).map_err(io(visible)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_relative_to_a_directory() {
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/.mrpipe/u/current/t")),
            Path::new("../.mrpipe/u/current/t")
        );
        assert_eq!(relative(Path::new("/a"), Path::new("/a/.mrpipe/u/current/t")), Path::new(".mrpipe/u/current/t"));
    }

    #[test]
    fn a_generation_appears_whole_and_replaces_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let store = out.join(super::STORE).join("job");
        for (round, text) in [(1, "old"), (2, "new")] {
            let mut g = Generation::start(store.clone()).unwrap();
            for name in ["a.tsv", "b.tsv"] {
                g.write(&out.join(name), |w| std::io::Write::write_all(w, text.as_bytes()).map_err(io(&out))).unwrap();
            }
            if round == 2 {
                // Written but not committed: nothing visible changes.
                assert_eq!(std::fs::read_to_string(out.join("a.tsv")).unwrap(), "old");
            }
            g.commit().unwrap();
        }
        assert_eq!(std::fs::read_to_string(out.join("b.tsv")).unwrap(), "new");
        let gens = std::fs::read_dir(&store).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "current").count();
        assert_eq!(gens, 1, "the previous generation is removed");
        // A generation dropped uncommitted leaves nothing.
        let g = Generation::start(store.clone()).unwrap();
        drop(g);
        assert_eq!(std::fs::read_dir(&store).unwrap().count(), 2);
    }
}
