//! tmp
#[must_use]
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(<crate::cli::Cli as clap::CommandFactory>::command())
        .render(&mut out)
        .unwrap();
    out
}
