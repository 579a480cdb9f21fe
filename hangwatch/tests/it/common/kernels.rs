//! What differs between the kernels the tests run on (this VM, and the matrix of
//! `cargo xtask vmtest`: docs/kernels.md).

use serde_json::Value;

/// The `wchan` hangwatch reports for a thread whose `/proc/.../wchan` reads `proc_wchan`: the
/// same name, or `null` where the kernel gives none ("0": 5.10 on x86_64 cannot unwind a
/// sleeping task's stack with its ORC unwinder, fixed in 5.16).
pub fn expected_wchan(proc_wchan: &str) -> Value {
    match proc_wchan.trim() {
        "" | "0" => Value::Null,
        name => Value::String(name.to_owned()),
    }
}

/// The first record matching `pred`, among those `live` has already received (under emulation,
/// in the kernel matrix, records can arrive in another order than on this VM), else the next
/// one to arrive within `timeout`.
pub fn seen_or_wait(
    live: &mut super::Live,
    timeout: std::time::Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    live.seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| pred(v))
        .or_else(|| live.wait_for(timeout, pred))
}
