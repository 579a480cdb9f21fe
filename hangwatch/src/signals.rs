//! Stopping live mode on SIGINT/SIGTERM, also while stdout is stalled.
//!
//! Two faults are handled here:
//! * a signal that arrives while hangwatch is still starting (loading the probes) must not be
//!   lost: [`block_stop_signals`] holds SIGINT/SIGTERM pending from the first moments of `main`
//!   until [`StopSignals::install`] has a handler in place, which then unblocks them;
//! * a signal that arrives while the JSON writer is blocked in `write(2)` on a reader that stopped
//!   reading cannot be seen by that writer: the handler task runs on the runtime's worker threads
//!   and, if the main loop has not ended [`STOP_GRACE`] after the signal, ends the process itself.
//!   Every probe is an fd-owned link, so the kernel detaches them all when the process exits.

use std::time::Duration;

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};

/// How long the main loop has to end by itself after SIGINT/SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// The exit status of live mode stopped by SIGINT or SIGTERM (a requested stop is a success).
pub const STOPPED_EXIT_CODE: i32 = 0;

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set they are given, which is a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Holds SIGINT and SIGTERM pending in this thread (and the threads it starts later) until
/// [`StopSignals::install`]. Call it first thing in `main` for the modes that handle them.
pub fn block_stop_signals() {
    let set = stop_set();
    // SAFETY: pthread_sigmask reads the set and changes only this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

fn unblock_stop_signals() {
    let set = stop_set();
    // SAFETY: as in block_stop_signals.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

/// A stop request, seen by the main loop through [`StopSignals::requested`].
pub struct StopSignals {
    rx: watch::Receiver<bool>,
}

impl StopSignals {
    /// Installs one SIGINT and one SIGTERM listener for the life of the process (a listener made
    /// anew on each pass of a loop drops a signal that arrives between two passes), then
    /// unblocks the signals held by [`block_stop_signals`]. Must run inside the runtime, on the
    /// thread that called `block_stop_signals`.
    pub fn install() -> std::io::Result<StopSignals> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            let _ = tx.send(true);
            tokio::time::sleep(STOP_GRACE).await;
            // Still running: the main loop is blocked writing to a reader that stopped reading.
            log::debug!("{which}: stdout is stalled, exiting without flushing it");
            std::process::exit(STOPPED_EXIT_CODE);
        });
        unblock_stop_signals();
        Ok(StopSignals { rx })
    }

    /// Resolves once SIGINT or SIGTERM was received (at once if it already was).
    pub async fn requested(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}
