//! The launch: the init in front of the command, and the `execve` itself.
#![forbid(unsafe_code)]

pub mod exec;
pub mod init;
