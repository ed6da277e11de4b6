//! `herald mock`.

use std::process::ExitCode;

/// Options of `herald mock`.
#[derive(Debug, clap::Args)]
pub(crate) struct MockArgs {}

/// Runs `herald mock`.
pub(crate) async fn run(_args: MockArgs) -> ExitCode {
    eprintln!("herald mock: not built yet");
    ExitCode::FAILURE
}
