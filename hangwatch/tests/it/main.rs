//! hangwatch's integration tests: one test binary (`cargo test -p hangwatch --test it`), one
//! module per subject, on the shared harness in `common/`. They start real processes that really
//! block, leak and get OOM-killed (the C and Python programs of `tests/progs/`) and check what
//! hangwatch reports; most need root.
//!
//! Every test that starts a process takes the harness's [`common::serial`] lock first, so the
//! tests of all modules run one at a time even though the harness runs tests on several
//! threads: every snapshot attaches BPF programs, and the timing checks must not compete with
//! another test's busy loop. A test name reads `module::test`, e.g.
//! `kernel::every_probe_attaches_or_its_gap_is_named`; `cargo test --test it -- kernel::` runs
//! one module.

mod common;

mod bounded;
mod cli;
mod edges;
mod faults;
mod findings;
mod kernel;
mod live_json;
mod memory;
mod memory_verdicts;
mod oom_storm;
mod pystacks;
mod report_memory;
mod snapshot;
mod stacks;
mod terminal_safety;
mod tui;
mod verdicts;
