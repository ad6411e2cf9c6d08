//! Inputs in object storage and on the web, read through the `object_store` crate:
//! `s3://bucket/key` (`s3a://`), `gs://bucket/key`, `az://container/key` (`azure://`,
//! `abfs://`, `abfss://`) and `http(s)://host/path`. An input URL names one object, a
//! "directory" (ending in `/`: the objects directly under it) or a glob (`*`, `?`, `[`
//! in the key: matched against every key under the literal prefix before it).
//! HTTP(S) inputs name single files (a web server has no listing).
//!
//! Credentials come from the usual environment, read by the crate's `from_env`
//! builders: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (S3-compatible stores; an
//! `http://` endpoint is allowed without TLS), web identity and instance metadata;
//! `GOOGLE_SERVICE_ACCOUNT`/`GOOGLE_APPLICATION_CREDENTIALS`; `AZURE_STORAGE_ACCOUNT_NAME`,
//! `AZURE_STORAGE_ACCOUNT_KEY` and the like. For S3, `AWS_PROFILE` (or `default`) is read
//! from `~/.aws/credentials` and `~/.aws/config` when the environment holds no key.
//!
//! Reads are blocking calls for the reader's threads: each runs on one small shared
//! tokio runtime. A plain object is read in ranged GETs, one per chunk, each conditional
//! on the ETag seen when the input was listed, so an object replaced mid-run fails the
//! run rather than mixing two versions; a compressed one is one streamed GET.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};

/// The URL schemes read as objects.
const SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "http", "https"];

/// Whether an input argument is a URL read through object storage.
pub fn is_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// Whether a path is an object's URL (inputs keep their URL as their path).
pub fn is_object(path: &std::path::Path) -> bool {
    path.to_str().is_some_and(is_url)
}

/// The runtime every object request runs on (two workers: requests mostly wait).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mrpipe-object-io")
            .enable_all()
            .build()
            .expect("a tokio runtime can be started")
    })
}

/// Runs `future` on the I/O runtime and waits for it; callable from any thread.
fn wait<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> std::io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    futures::executor::block_on(rx).map_err(|_| std::io::Error::other("the object request was cancelled"))
}

/// One object store per (scheme, bucket or host), built once.
fn store(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let key = format!("{}://{}", url.scheme(), url.authority());
    let mut stores = STORES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(store) = stores.get(&key) {
        return Ok(Arc::clone(store));
    }
    let fail = |e: object_store::Error| Error::Usage(format!("input '{url}': {e}"));
    let built: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(key.clone());
            for (name, value) in aws_profile() {
                builder = builder.with_config(name.parse().map_err(fail)?, value);
            }
            let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL"));
            if endpoint.is_ok_and(|e| e.starts_with("http://")) {
                builder = builder.with_allow_http(true);
            }
            Arc::new(builder.build().map_err(fail)?)
        }
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(key.clone()).build().map_err(fail)?,
        ),
        "az" | "azure" | "abfs" | "abfss" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url.as_str()).build().map_err(fail)?,
        ),
        _ => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(key.clone())
                .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
                .build()
                .map_err(fail)?,
        ),
    };
    stores.insert(key, Arc::clone(&built));
    Ok(built)
}

/// For S3 without keys in the environment: `aws_access_key_id`, `aws_secret_access_key`,
/// `aws_session_token`, `region` and `endpoint_url` of the profile `AWS_PROFILE` (or
/// `default`) in `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`) and `AWS_CONFIG_FILE`
/// (`~/.aws/config`, sections `[profile NAME]`), as the AWS CLI reads them.
fn aws_profile() -> Vec<(String, String)> {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return Vec::new();
    }
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    let file = |var: &str, default: &str| std::env::var_os(var).map_or_else(|| home.join(default), Into::into);
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let config = file("AWS_CONFIG_FILE", ".aws/config");
    let config_section = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
    let mut found: Vec<(String, String)> = Vec::new();
    for (path, section) in [(config, config_section), (credentials, profile)] {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        for (key, value) in ini_section(&text, &section) {
            let name = match key.as_str() {
                "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token" => key.clone(),
                "region" => "aws_region".into(),
                "endpoint_url" => "aws_endpoint".into(),
                _ => continue,
            };
            // The credentials file, read second, wins over the config file.
            found.retain(|(k, _)| *k != name);
            found.push((name, value));
        }
    }
    found
}

/// The `key = value` pairs of `[section]` in an INI text (`#` and `;` comments).
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut pairs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    pairs
}

/// What the listing (or a HEAD) said about each object read: its size and ETag, which
/// every later read of the run is checked against.
fn listed() -> &'static Mutex<HashMap<String, ObjectMeta>> {
    static LISTED: OnceLock<Mutex<HashMap<String, ObjectMeta>>> = OnceLock::new();
    LISTED.get_or_init(Default::default)
}

fn parse(text: &str) -> Result<Url> {
    Url::parse(text).map_err(|e| Error::Usage(format!("input '{text}' is not a valid URL: {e}")))
}

/// The object key a URL names (percent-decoded).
fn key(url: &Url) -> std::result::Result<ObjectPath, object_store::Error> {
    // The bucket (container) is the URL's host for every scheme; the path is the key.
    ObjectPath::from_url_path(url.path())
        .map_err(|e| object_store::Error::Generic { store: "url", source: Box::new(e) })
}

/// The URL of `location` in the store of `base`.
fn url_of(base: &Url, location: &ObjectPath) -> String {
    format!("{}://{}/{}", base.scheme(), base.authority(), location)
}

fn io_error(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()),
        object_store::Error::Precondition { .. } => std::io::Error::other(
            "the object was replaced while it was read (its ETag changed); nothing was published, run again",
        ),
        other => std::io::Error::other(other.to_string()),
    }
}

/// Expands one input URL into object URLs, sorted. Errors: a bad URL, a store that cannot
/// be reached or refuses, a glob or directory on an HTTP server.
pub fn expand(text: &str) -> Result<Vec<String>> {
    let url = parse(text)?;
    let store = store(&url)?;
    let fail = |e: object_store::Error| Error::io(text, io_error(e));
    let key_text = url.path().trim_start_matches('/');
    let glob_at = key_text.find(['*', '?', '[']);
    let web = matches!(url.scheme(), "http" | "https");
    if web && (glob_at.is_some() || key_text.ends_with('/') || key_text.is_empty()) {
        return Err(Error::Usage(format!(
            "input '{text}': an HTTP(S) input names one file (a web server has no listing to expand a directory \
             or a pattern from)"
        )));
    }
    let mut found: Vec<ObjectMeta> = Vec::new();
    if let Some(at) = glob_at {
        let literal = &key_text[..key_text[..at].rfind('/').map_or(0, |slash| slash + 1)];
        let pattern = glob::Pattern::new(&percent_decode(key_text))
            .map_err(|e| Error::Usage(format!("bad glob pattern '{text}': {e}")))?;
        let prefix = (!literal.is_empty()).then(|| ObjectPath::from(percent_decode(literal).trim_end_matches('/')));
        let listing = wait(store.list(prefix.as_ref()).collect::<Vec<_>>()).map_err(|e| Error::io(text, e))?;
        for meta in listing {
            let meta = meta.map_err(fail)?;
            let options = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
            if pattern.matches_with(meta.location.as_ref(), options) {
                found.push(meta);
            }
        }
        if found.is_empty() {
            return Err(Error::NoInput(format!("pattern '{text}'")));
        }
    } else if key_text.is_empty() || key_text.ends_with('/') {
        let prefix = (!key_text.is_empty()).then(|| ObjectPath::from(percent_decode(key_text).trim_end_matches('/')));
        let store2 = Arc::clone(&store);
        let listing = wait(async move { store2.list_with_delimiter(prefix.as_ref()).await })
            .map_err(|e| Error::io(text, e))?
            .map_err(fail)?;
        found = listing.objects;
        if found.is_empty() {
            return Err(Error::NoInput(format!("directory '{text}' (it holds no object)")));
        }
    } else {
        let location = key(&url).map_err(fail)?;
        let store2 = Arc::clone(&store);
        let meta = wait(async move { store2.head(&location).await }).map_err(|e| Error::io(text, e))?;
        match meta {
            Ok(meta) => found.push(meta),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Usage(format!("input '{text}' does not exist")));
            }
            Err(e) => return Err(fail(e)),
        }
    }
    // Hidden objects (`.name`) are skipped in listings, as hidden files are.
    let explicit = glob_at.is_none() && !key_text.ends_with('/') && !key_text.is_empty();
    let mut urls = Vec::with_capacity(found.len());
    let mut memo = listed().lock().unwrap_or_else(|p| p.into_inner());
    for meta in found {
        let name = meta.location.filename().unwrap_or_default();
        if !explicit && name.starts_with('.') {
            continue;
        }
        let at = if explicit { text.to_string() } else { url_of(&url, &meta.location) };
        memo.insert(at.clone(), meta);
        urls.push(at);
    }
    urls.sort();
    Ok(urls)
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// An object to read: its store, key and the ETag every read must match.
struct Object {
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    etag: Option<String>,
}

fn object(text: &str) -> std::io::Result<Object> {
    let url = Url::parse(text).map_err(|e| std::io::Error::other(e.to_string()))?;
    let store = store(&url).map_err(|e| std::io::Error::other(e.to_string()))?;
    let location = key(&url).map_err(io_error)?;
    let etag = meta(text)?.e_tag;
    Ok(Object { store, location, etag })
}

/// Size and ETag of an object, as listed (or by a HEAD request the first time).
pub fn meta(text: &str) -> std::io::Result<ObjectMeta> {
    if let Some(meta) = listed().lock().unwrap_or_else(|p| p.into_inner()).get(text) {
        return Ok(meta.clone());
    }
    let url = Url::parse(text).map_err(|e| std::io::Error::other(e.to_string()))?;
    let store = store(&url).map_err(|e| std::io::Error::other(e.to_string()))?;
    let location = key(&url).map_err(io_error)?;
    let meta = wait(async move { store.head(&location).await })?.map_err(io_error)?;
    listed().lock().unwrap_or_else(|p| p.into_inner()).insert(text.to_string(), meta.clone());
    Ok(meta)
}

/// Reads `range` of the object into `buf` (replacing its contents). Errors: the object
/// changed since it was listed, or is shorter than the range.
pub fn read_range(text: &str, range: Range<u64>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let bytes = get_range(text, range.clone())?;
    if (bytes.len() as u64) < range.end - range.start {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the object shrank while it was read; nothing was published, run again",
        ));
    }
    buf.clear();
    buf.extend_from_slice(&bytes);
    Ok(())
}

fn get_range(text: &str, range: Range<u64>) -> std::io::Result<Bytes> {
    let Object { store, location, etag } = object(text)?;
    let options = GetOptions { range: Some(GetRange::Bounded(range)), if_match: etag, ..GetOptions::default() };
    wait(async move {
        let result = store.get_opts(&location, options).await?;
        result.bytes().await
    })?
    .map_err(io_error)
}

/// The first line start at or after `at` (> 0), by reading forward from `at - 1`.
pub fn next_line_start(text: &str, at: u64) -> std::io::Result<Option<u64>> {
    let size = meta(text)?.size;
    let mut pos = at - 1;
    while pos < size {
        let end = (pos + 64 * 1024).min(size);
        let bytes = get_range(text, pos..end)?;
        if let Some(j) = memchr::memchr(b'\n', &bytes) {
            return Ok(Some(pos + j as u64 + 1));
        }
        pos = end;
    }
    Ok(None)
}

/// The whole object as a stream of bytes, for decompressing or hashing in order; fails
/// if the object changes while it is read.
pub fn open(text: &str) -> std::io::Result<Box<dyn Read + Send>> {
    let Object { store, location, etag } = object(text)?;
    // A few MiB in flight at most: the reader's blocks bound the rest.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    runtime().spawn(async move {
        let options = GetOptions { if_match: etag, ..GetOptions::default() };
        match store.get_opts(&location, options).await {
            Ok(result) => {
                let mut stream = result.into_stream();
                while let Some(piece) = stream.next().await {
                    if tx.send(piece.map_err(io_error)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(io_error(e))).await;
            }
        }
    });
    Ok(Box::new(ObjectReader { rx, current: Bytes::new() }))
}

/// A blocking reader over the pieces a GET's body arrives in.
struct ObjectReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match futures::executor::block_on(self.rx.recv()) {
                Some(piece) => self.current = piece?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_supported_scheme_are_objects_and_paths_are_not() {
        for url in
            ["s3://b/k.tsv", "S3://b/k", "gs://b/k", "az://c/k", "abfss://c@a.dfs.core.windows.net/k", "https://h/x"]
        {
            assert!(is_url(url), "{url}");
        }
        for path in ["logs/x.tsv", "/var/log/a", "-", "ftp://h/x", "s3:/b"] {
            assert!(!is_url(path), "{path}");
        }
    }

    #[test]
    fn aws_profiles_are_read_as_the_cli_reads_them() {
        let text =
            "# c\n[default]\nregion = eu-west-1\n[profile dev]\nregion=us-east-2\n endpoint_url = http://h:9000 \n";
        assert_eq!(
            ini_section(text, "profile dev"),
            [
                ("region".to_string(), "us-east-2".to_string()),
                ("endpoint_url".to_string(), "http://h:9000".to_string())
            ]
        );
        assert_eq!(ini_section(text, "default"), [("region".to_string(), "eu-west-1".to_string())]);
        assert!(ini_section(text, "missing").is_empty());
    }
}
