//! `mxguard` executable: everything lives in the library (`mxguard::cli`); this only hands over
//! the process exit code.

fn main() -> std::process::ExitCode {
    mxguard::cli::main()
}
