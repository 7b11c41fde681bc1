//! The `dbbackup` binary.

fn main() -> std::process::ExitCode {
    dbbackup_cli::run(std::env::args_os())
}
