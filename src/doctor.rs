//! `claude-iso doctor`: inspect everything the launcher would do, change nothing.

use crate::cli::DoctorArgs;
use crate::report::Report;

/// Runs the doctor; returns 0 when no check failed, 1 otherwise.
pub fn main(_args: &DoctorArgs, _report: &Report) -> i32 {
    eprintln!("claude-iso: doctor is not implemented yet");
    1
}
