//! hangwatch: which threads are stuck, on what, since when; and the memory processes hold.
// No `unwrap()`/`expect()` on a runtime path: a bad value is an error, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used)]
pub mod access;
pub mod analysis;
pub mod cli;
pub mod error;
pub mod escape;
pub mod fmt;
#[cfg(test)]
mod fuzz;
pub mod live;
pub mod memory;
pub mod memory_layout;
pub mod model;
pub mod output;
pub mod pids;
pub mod privileges;
pub mod probes;
pub mod procfs;
pub mod signals;
pub mod snapshot;
pub mod sources;
pub mod stacks;
pub mod stdio;
pub mod syscalls;
pub mod tui;
