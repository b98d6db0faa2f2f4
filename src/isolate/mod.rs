//! What keeps the token and the caller's other credentials out of the command's reach:
//! the settings guard, the child environment and its scrub, the kernel mask and the shared
//! copies that pass through it, claude's own tool scrub, and the broker that holds the
//! token on claude's behalf.
#![forbid(unsafe_code)]

pub(crate) mod broker;
pub(crate) mod environment;
pub mod guard;
pub(crate) mod mask;
pub(crate) mod proxy;
pub mod share;
pub(crate) mod tools;
