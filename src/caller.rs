//! The caller's environment, as data read once at start. A leaf.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The caller's environment, in order, as read once at start.
#[derive(Debug, Clone, Default)]
pub struct CallerEnv(Vec<(OsString, OsString)>);

impl CallerEnv {
    /// The process's own environment.
    #[must_use]
    pub fn from_process() -> Self {
        CallerEnv(std::env::vars_os().collect())
    }

    /// The value of `name`, if set (the first entry, as glibc's `getenv` returns).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The value of `name` as a path, only when it is absolute (the XDG base-directory
    /// rule: relative values are ignored).
    #[must_use]
    pub fn absolute_path(&self, name: &str) -> Option<&Path> {
        self.get(name)
            .map(Path::new)
            .filter(|p| p.is_absolute() && !p.as_os_str().is_empty())
    }

    /// All variables.
    #[must_use]
    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.0
    }

    /// Overwrites every name and value with zeros and empties the list: for a process
    /// that must keep no copy of a secret that came in through the environment (the
    /// init, once the command has its own).
    pub fn wipe(&mut self) {
        for (k, v) in std::mem::take(&mut self.0) {
            for s in [k, v] {
                let mut bytes = s.into_encoded_bytes();
                bytes.fill(0);
                std::hint::black_box(&bytes);
            }
        }
    }
}

impl<K: Into<OsString>, V: Into<OsString>> FromIterator<(K, V)> for CallerEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        CallerEnv(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}
