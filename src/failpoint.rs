//! Failpoints for the crash tests: named points in publication, spilling and the
//! Ballista scan where `MRPIPE_FAILPOINT=<name>` aborts the process, with no destructor
//! run, as a `kill -9` would at exactly that step, and `MRPIPE_FAILPOINT=<name>:stop`
//! freezes it (SIGSTOP), as a hung host would. A test that kills there is sure the kill
//! happened there.

/// Aborts (or freezes) the process when `MRPIPE_FAILPOINT` names this point. Unset, it
/// costs one environment lookup per call, so it sits at steps, never in per-row loops.
pub fn failpoint(name: &str) {
    let Some(value) = std::env::var_os("MRPIPE_FAILPOINT") else { return };
    let value = value.to_string_lossy();
    if value == name {
        std::process::abort();
    }
    if value.strip_suffix(":stop") == Some(name) {
        // SAFETY: raise has no preconditions; the process resumes only on SIGCONT.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}
