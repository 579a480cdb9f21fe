//! Errors a user can act on. Each names the bad value or the missing thing.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The message is built by [`crate::privileges::refusal`]: which capability is missing, what
    /// for, and how to grant it where hangwatch runs.
    #[error("{0}")]
    NotPrivileged(String),
    #[error("no process with pid {0}")]
    NoSuchPid(i32),
    #[error("{0}")]
    Usage(String),
    #[error("cannot load the eBPF programs: {0}")]
    BpfLoad(String),
    #[error("{0}")]
    Unsupported(String),
    /// A resource limit too low to run with (RLIMIT_NOFILE).
    #[error("{0}")]
    Resource(String),
}

impl Error {
    /// Exit status: 2 for what the user can fix on the command line or by privilege, 1 else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotPrivileged(_) | Error::NoSuchPid(_) | Error::Usage(_) => 2,
            Error::BpfLoad(_) | Error::Unsupported(_) | Error::Resource(_) => 1,
        }
    }
}
