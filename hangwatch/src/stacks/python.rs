//! Python stacks: PLACEHOLDER. The real implementation (py-spy as a library) is written on
//! the `pystacks` branch, and the lead replaces this whole file with it at merge. Only the
//! contract lives here: `PyFrame`, and `PythonStacks` with `read` / `forget_exited`.

use std::collections::HashMap;

/// One Python frame, innermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PyFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// A per-process cache of what is needed to read Python stacks.
#[derive(Debug, Default)]
pub struct PythonStacks {}

impl PythonStacks {
    pub fn new() -> PythonStacks {
        PythonStacks::default()
    }

    /// The Python stack of each thread (by OS tid) of `pid`; `Ok(empty)` if `pid` is not a
    /// Python process.
    pub fn read(&mut self, _pid: i32) -> Result<HashMap<i32, Vec<PyFrame>>, String> {
        Err("python stacks: not in this build".to_string())
    }

    /// Drops the cache of processes for which `alive` says false.
    pub fn forget_exited(&mut self, _alive: &dyn Fn(i32) -> bool) {}
}
