//! The `aegis` command: serve the gateway, chat, scan text, manage runs, check config (see
//! [`cli`]).

mod cli;

/// mimalloc: under load, glibc's allocator (consolidating and splitting chunks across the
/// runtime's threads) took about a quarter of the gateway's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
