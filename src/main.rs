fn main() {
    std::process::exit(claude_iso::main(std::env::args_os()));
}
