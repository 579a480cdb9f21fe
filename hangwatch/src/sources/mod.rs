//! Readers of what the kernel shows beyond each process's own /proc entries, for the facts the
//! analysis follows chains through (docs/design.md, "Where things are"): which file an fd is
//! (`fdfile`, `fifo`), the peers of sockets (`unix_diag`, `inet`), the mappings of a process
//! (`maps`), who holds a file lock (`locks`, /proc/locks), who serves a FUSE mount (`fuse`),
//! and why a releaser cannot run (`runnable`); `quiet` keeps what cannot change while a
//! process does not run, for live mode's next pass; and, for memory, the OOM kills the kernel log
//! holds (`kmsg`) and the cgroup files (`cgroup`: limits, OOM kill counters, a memory cgroup's
//! path from its id). Each reads within bounds and parses with a pure function that the unit
//! tests and the fuzzer call on plain bytes.
//!
//! `clock` measures the offset between the scheduler's task clock and `CLOCK_MONOTONIC`, once
//! for both live mode's sources.
//!
//! `facts::gather` calls them into [`crate::model::facts::Facts`]; the analysis itself
//! (`analysis::analyze`) reads no file.

pub mod cgroup;
pub mod clock;
pub mod facts;
pub mod fdfile;
pub mod fifo;
pub mod fuse;
pub mod inet;
pub mod kmsg;
pub mod locks;
pub mod maps;
pub mod quiet;
pub mod runnable;
pub mod unix_diag;
