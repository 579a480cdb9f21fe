//! Stacks of blocked threads: kernel (`/proc/PID/task/TID/stack`), native (C/C++/Rust,
//! unwound from the registers saved at syscall entry) and Python (see `python.rs`).
//! See docs/stacks.md.

pub mod python;

pub use python::PyFrame;

/// The stack of one thread, innermost frame first in every list. `error` says why a part
/// could not be read (the frames read before the failure are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Stack {
    pub kernel: Vec<String>,
    pub native: Vec<NativeFrame>,
    pub python: Vec<PyFrame>,
    pub error: Option<String>,
}

/// One native frame. Where there is no symbol, `module` + `offset` (the file offset in
/// the module) and `build_id` still identify the code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NativeFrame {
    pub addr: u64,
    pub symbol: Option<String>,
    pub module: Option<String>,
    pub offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub build_id: Option<String>,
}
