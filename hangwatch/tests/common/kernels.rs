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
