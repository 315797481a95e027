//! The `corral` binary: parse arguments, set up logging, run. Everything else is in the library.

fn main() -> std::process::ExitCode {
    corral::cli::main()
}
