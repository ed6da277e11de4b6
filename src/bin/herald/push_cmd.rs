//! `herald push`.

use std::process::ExitCode;

/// Options of `herald push`.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {}

/// Runs `herald push`.
pub(crate) async fn run(_args: PushArgs) -> ExitCode {
    eprintln!("herald push: not built yet");
    ExitCode::FAILURE
}
