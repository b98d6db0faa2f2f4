//! The subcommands that are not a launch: `doctor` and `homes`.
#![forbid(unsafe_code)]

pub(crate) mod doctor;
pub(crate) mod homes;
