//! The subcommands that are not a launch: `doctor` and `homes`.
#![forbid(unsafe_code)]

pub mod doctor;
pub mod homes;
