//! The `aegis` command: serve the gateway, chat, scan text, manage runs, check config (see
//! [`cli`]).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
