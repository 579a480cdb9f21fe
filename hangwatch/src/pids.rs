//! `--pid` values as the user gave them: a thread id is taken for its process.

/// The process (thread group) a task id belongs to, from `/proc/ID/status` (`Tgid:`). A thread
/// id is not listed in /proc but `/proc/TID` still opens.
pub fn thread_group_of(id: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{id}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// Replaces every thread id in `pids` with its process id (once), and says so: one note per
/// replaced id. Ids that do not exist are left for the caller to report.
pub fn resolve_thread_ids(pids: &mut Vec<i32>) -> Vec<String> {
    let mut notes = Vec::new();
    let mut out: Vec<i32> = Vec::with_capacity(pids.len());
    for &id in pids.iter() {
        let pid = match thread_group_of(id) {
            Some(tgid) if tgid != id && tgid > 0 => {
                notes.push(format!(
                    "--pid {id} is a thread of process {tgid}: showing process {tgid}"
                ));
                tgid
            }
            _ => id,
        };
        if !out.contains(&pid) {
            out.push(pid);
        }
    }
    *pids = out;
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_id_resolves_to_its_process() {
        let me = std::process::id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let _ = tx.send(unsafe { libc::gettid() });
            let _ = done_rx.recv();
        });
        let tid = rx.recv().expect("tid");
        assert_ne!(tid, me);
        assert_eq!(thread_group_of(tid), Some(me));
        let mut pids = vec![tid, me];
        let notes = resolve_thread_ids(&mut pids);
        assert_eq!(pids, vec![me], "the thread and its process are one target");
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains(&tid.to_string()) && notes[0].contains(&me.to_string()));
        let _ = done_tx.send(());
        let _ = t.join();
    }

    #[test]
    fn a_process_id_is_kept() {
        let me = std::process::id() as i32;
        let mut pids = vec![me, 999_999_999];
        assert!(resolve_thread_ids(&mut pids).is_empty());
        assert_eq!(pids, vec![me, 999_999_999]);
    }
}
