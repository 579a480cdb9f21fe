//! hangwatch: which threads are stuck, on what, since when; and the memory processes hold.
pub mod analysis;
pub mod bpf;
pub mod btf;
pub mod cli;
pub mod error;
pub mod escape;
pub mod live;
pub mod memory;
pub mod model;
pub mod oom;
pub mod output;
pub mod privileges;
pub mod procfs;
pub mod snapshot;
pub mod syscalls;
pub mod tui;
