//! Failpoints for the crash tests: named points in publication and spilling where
//! `MRPIPE_FAILPOINT=<name>` aborts the process, with no destructor run, as a `kill -9`
//! would at exactly that step. A test that kills there is sure the kill happened there.

/// Aborts the process when `MRPIPE_FAILPOINT` names this point. Unset, it costs one
/// environment lookup per call, so it sits at steps, never in per-row loops.
pub fn failpoint(name: &str) {
    if std::env::var_os("MRPIPE_FAILPOINT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}
