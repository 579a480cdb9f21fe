//! The scheduler's task clock and `CLOCK_MONOTONIC`: the one calibration (docs/design.md,
//! "Clocks"). `se.exec_start`, the start of a sleeping thread's wait, is on the task clock;
//! [`task_clock_offsets`] measures, per CPU, what to add to it to get `CLOCK_MONOTONIC`.
//!
//! It is measured when the probes load, at the end of a snapshot's window, and in live mode
//! every [`RECALIBRATE_EVERY`] by the kernel collector (which owns the probes and must hand
//! them the new offsets); it publishes them in a [`SharedOffsets`] that the /proc scanner
//! reads, so the two sources convert with the same values and only one of them spins on the
//! CPUs. (Before, the scanner measured its own every 30 scans: two calibrations every 30 s.)

use std::{fs, io, sync::Mutex, time::Duration};

use crate::procfs::{monotonic_ns, parse_exec_start_ns};

/// How often live mode re-measures the offsets (they drift apart with steal time on VMs).
pub const RECALIBRATE_EVERY: Duration = Duration::from_secs(30);

/// The per-CPU offsets in use (index = CPU), measured by one owner and read by the others.
#[derive(Debug, Default)]
pub struct SharedOffsets(Mutex<Vec<i64>>);

impl SharedOffsets {
    pub fn new(offsets: &[i64]) -> Self {
        SharedOffsets(Mutex::new(offsets.to_vec()))
    }

    /// Replaces the offsets in use (an empty measurement is ignored).
    pub fn publish(&self, offsets: &[i64]) {
        if offsets.is_empty() {
            return;
        }
        if let Ok(mut v) = self.0.lock() {
            offsets.clone_into(&mut v);
        }
    }

    /// The offsets last published.
    pub fn current(&self) -> Vec<i64> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Measures `CLOCK_MONOTONIC - task clock` (the clock of `se.exec_start`), in ns.
///
/// The calling thread reads its own `se.exec_start`, which the scheduler refreshes at every
/// tick while it runs, so `now - exec_start` is the offset plus at most one tick of staleness.
/// The smallest of several reads spread over a few ticks is kept.
pub fn task_clock_offset_ns() -> io::Result<i64> {
    let mut best: Option<i64> = None;
    for _ in 0..10 {
        let before = monotonic_ns();
        let s = fs::read_to_string("/proc/thread-self/sched")?;
        let Some(es) = parse_exec_start_ns(&s) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no se.exec_start in /proc/thread-self/sched",
            ));
        };
        let off = before as i64 - es as i64;
        best = Some(best.map_or(off, |b: i64| b.min(off)));
        // Spin (stay on CPU) a fraction of a tick so the reads land at different tick phases.
        let spin_until = monotonic_ns() + 450_000;
        while monotonic_ns() < spin_until {
            std::hint::spin_loop();
        }
    }
    best.ok_or_else(|| io::Error::other("no sample"))
}

/// CPUs that are online, from /sys/devices/system/cpu/online ("0-3,8-11").
pub fn online_cpus() -> Vec<u32> {
    let s = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_else(|_| "0".into());
    parse_cpu_list(&s)
}

/// Most CPUs a CPU list yields (the kernel's NR_CPUS is at most 8192 today).
const MAX_CPUS: usize = 65_536;

/// "0-3,8-11" → [0, 1, 2, 3, 8, 9, 10, 11]; at most [`MAX_CPUS`] entries, whatever it says.
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let room = MAX_CPUS.saturating_sub(out.len());
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend((a..=b).take(room));
                }
            }
            None => out.extend(part.parse::<u32>().ok().into_iter().take(room)),
        }
    }
    out
}

/// Per-CPU offsets `CLOCK_MONOTONIC - task clock` (index = CPU), measured by a thread pinned
/// to each online CPU in turn. The task clock subtracts steal time per CPU, so the offsets
/// differ between CPUs (by most of a second after a while on a busy VM). CPUs that could not
/// be measured get the offset of the first one that could.
pub fn task_clock_offsets() -> io::Result<Vec<i64>> {
    let cpus = online_cpus();
    let handle = std::thread::spawn(move || -> io::Result<Vec<(u32, i64)>> {
        let mut out = Vec::new();
        for cpu in cpus {
            // SAFETY: a zeroed cpu_set_t is valid; CPU_SET only writes within it.
            let ok = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu as usize, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
            };
            if !ok {
                continue;
            }
            std::thread::yield_now();
            out.push((cpu, task_clock_offset_ns()?));
        }
        Ok(out)
    });
    let measured = handle.join().map_err(|_| io::Error::other("calibration thread panicked"))??;
    let Some(&(_, fallback)) = measured.first() else {
        return Ok(vec![task_clock_offset_ns()?]);
    };
    let max = measured.iter().map(|(c, _)| *c as usize).max().unwrap_or(0);
    let mut v = vec![fallback; max + 1];
    for (c, off) in measured {
        v[c as usize] = off;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
    }

    #[test]
    fn per_cpu_offsets_cover_online_cpus() {
        let offs = task_clock_offsets().unwrap();
        let max = *online_cpus().iter().max().unwrap() as usize;
        assert_eq!(offs.len(), max + 1);
    }

    #[test]
    fn clock_offset_is_stable() {
        let a = task_clock_offset_ns().unwrap();
        let b = task_clock_offset_ns().unwrap();
        assert!((a - b).abs() < 5_000_000, "offsets {a} vs {b} differ by more than 5 ms");
    }

    #[test]
    fn shared_offsets_hand_on_what_was_published() {
        let s = SharedOffsets::new(&[100, 200]);
        assert_eq!(s.current(), vec![100, 200]);
        s.publish(&[5, 6, 7]);
        assert_eq!(s.current(), vec![5, 6, 7]);
        // A failed measurement (nothing) keeps the last good offsets.
        s.publish(&[]);
        assert_eq!(s.current(), vec![5, 6, 7]);
    }
}
