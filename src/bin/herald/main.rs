//! `herald`: the command-line face of the herald crate.
//!
//! - `herald mock` runs the mock APNs server standalone.
//! - `herald push` sends one push to APNs (or to the mock).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod mock_cmd;
mod push_cmd;

/// herald: a typed notification center with an APNs adapter.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mock APNs server (HTTP/2 over TLS on loopback) until Ctrl-C.
    Mock(Box<mock_cmd::MockArgs>),
    /// Send one push to APNs, or to a mock server, and print the outcome.
    Push(Box<push_cmd::PushArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Mock(args) => mock_cmd::run(*args).await,
            Command::Push(args) => push_cmd::run(*args).await,
        }
    })
}
