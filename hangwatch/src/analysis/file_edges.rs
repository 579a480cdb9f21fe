//! The edges of waits on files whose releaser the facts name: a FUSE request (to the process
//! serving the mount, [`crate::sources::fuse`]) and a file lock (to the holders /proc/locks
//! shows, [`crate::sources::locks`]). Pure over the facts.

use std::collections::BTreeSet;

use super::{Edge, Target};
use crate::{
    model::{Wait, facts::Facts},
    syscalls::WaitOn,
};

/// The edges of a FUSE wait (true), or false when the thread is not in one.
pub fn fuse_edges(pid: i32, tid: i32, facts: &Facts, edges: &mut Vec<Edge>) -> bool {
    let Some(on) = facts.fuse_waits.get(&(pid, tid)) else { return false };
    let unknown = facts.fuse_servers.get(&None);
    for (minor, mount) in on {
        let servers: BTreeSet<i32> = facts
            .fuse_servers
            .get(&Some(*minor))
            .into_iter()
            .chain(unknown)
            .flatten()
            .copied()
            .collect();
        for &s in &servers {
            let why = if s == pid {
                format!("FUSE mount {mount} (connection {minor}) that its own process serves")
            } else {
                format!("FUSE mount {mount} (connection {minor}) served by pid {s} (/dev/fuse)")
            };
            edges.push(Edge { target: Target::Process(s), why });
        }
        if servers.is_empty() {
            let why = format!("FUSE mount {mount} (connection {minor}) whose server is not seen");
            edges.push(Edge { target: Target::Outside, why });
        }
    }
    if on.is_empty() {
        edges.push(Edge { target: Target::Outside, why: "a FUSE mount it cannot name".into() });
    }
    true
}

/// The edges of a lock wait (true), or false when `w` is not one.
pub fn lock_edges(pid: i32, w: &Wait, facts: &Facts, edges: &mut Vec<Edge>) -> bool {
    if !matches!(w.decoded.wait_on, WaitOn::FileLock { .. }) {
        return false;
    }
    let fd = w.decoded.fds.first().copied().unwrap_or(-1);
    let what = w.decoded.wait_on.fd_target().map_or_else(|| format!("fd {fd}"), str::to_string);
    let blockers = facts.lock_blockers.get(&(pid, fd)).map(Vec::as_slice).unwrap_or(&[]);
    for b in blockers {
        let lock = b.lock.describe();
        for &o in &b.holders {
            let why = if o == pid {
                format!("file lock on {what} ({lock}) that its own process holds")
            } else {
                format!("file lock on {what} ({lock}) held by pid {o}")
            };
            edges.push(Edge { target: Target::Process(o), why });
        }
        if b.holders.is_empty() {
            let why = format!(
                "file lock on {what} ({lock}) whose holder no process has open (in flight)"
            );
            edges.push(Edge { target: Target::Outside, why });
        }
    }
    if blockers.is_empty() {
        let why = format!("file lock on {what} whose holder /proc/locks does not show");
        edges.push(Edge { target: Target::Outside, why });
    }
    true
}
