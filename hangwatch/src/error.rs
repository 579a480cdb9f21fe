//! Errors a user can act on. Each names the bad value or the missing thing.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("hangwatch needs root or capabilities {missing} (run it with sudo)")]
    NotPrivileged { missing: String },
    #[error("no process with pid {0}")]
    NoSuchPid(i32),
    #[error("{0}")]
    Usage(String),
    #[error("cannot load the eBPF programs: {0}")]
    BpfLoad(String),
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// Exit status: 2 for what the user can fix on the command line or by privilege, 1 else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotPrivileged { .. } | Error::NoSuchPid(_) | Error::Usage(_) => 2,
            Error::BpfLoad(_) | Error::Unsupported(_) => 1,
        }
    }
}
