//! The man page: clap's definition rendered by clap_mangen, plus hand-written sections.

/// The full `man/claude-iso.1` text.
#[must_use]
pub fn render() -> Vec<u8> {
    Vec::new()
}
