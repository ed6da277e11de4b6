//! `herald`: the command-line face of the herald crate.
//!
//! - `herald mock` runs the mock APNs server standalone, and prints a ready-to-paste
//!   `herald push` command that it will accept (`--json`: one machine-readable start-up line).
//! - `herald push` sends one push to APNs (or to the mock) and explains the outcome.
//! - `herald worker` (features `nats` and `bridge`) takes pushes from a NATS JetStream work
//!   queue, sends them, and publishes their outcomes (`herald::nats::push`).
//!
//! # Exit codes
//!
//! | code | `herald push` | `herald mock` | `herald worker` |
//! |---|---|---|---|
//! | 0 | APNs accepted the push | stopped by Ctrl-C or SIGTERM | stopped by Ctrl-C or SIGTERM, after finishing the pushes it held (with the NATS server gone, they are left unacknowledged for redelivery) |
//! | 1 | usage or input error (bad option, unreadable key, invalid push): nothing was sent | usage or start-up error: nothing is left behind | usage or start-up error (bad option, unreadable key) |
//! | 2 | rejected by APNs (the reason and what to do are printed) | | |
//! | 3 | not sent: no connection (refused, TLS, proxy, connect timeout); safe to retry | | no NATS server (or no JetStream): nothing was taken |
//! | 4 | sent, but no definitive answer (timeout, connection lost, APNs kept answering 429/5xx): APNs may or may not have it | | |

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Prints a line on stdout and flushes it; evaluates to `false` when stdout is gone (a reader
/// that closed the pipe, a full disk) where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        crate::write_line(&mut std::io::stdout().lock(), format_args!($($arg)*))
    };
}

/// Prints a line on stderr; evaluates to `false` when stderr is gone (`eprintln!` would panic).
macro_rules! errln {
    ($($arg:tt)*) => {
        crate::write_line(&mut std::io::stderr().lock(), format_args!($($arg)*))
    };
}

/// Writes one line and flushes it: `false` when the output is gone (`EPIPE` and the like: Rust
/// ignores `SIGPIPE`, so a closed pipe is an error here, never a signal).
fn write_line(out: &mut impl std::io::Write, line: std::fmt::Arguments<'_>) -> bool {
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

mod apns_options;
mod mock_cmd;
mod push_cmd;
mod time;
#[cfg(all(feature = "nats", feature = "bridge"))]
mod worker_cmd;

/// The exit codes, as documented in the module docs and `herald --help`.
pub(crate) mod exit {
    /// Success: the push was accepted; the mock stopped cleanly.
    pub(crate) const OK: u8 = 0;
    /// Usage or input error: nothing was sent, nothing was started.
    pub(crate) const USAGE: u8 = 1;
    /// APNs rejected the push.
    pub(crate) const REJECTED: u8 = 2;
    /// Nothing was sent: no connection could be made.
    pub(crate) const NOT_SENT: u8 = 3;
    /// Sent, but no definitive answer.
    pub(crate) const NO_ANSWER: u8 = 4;
}

#[cfg(all(feature = "nats", feature = "bridge"))]
const EXIT_CODES: &str = "\
Exit codes:
  0  herald push: APNs accepted the push.  herald mock, herald worker: stopped by Ctrl-C or
     SIGTERM (the worker after finishing the pushes it held, or,
     with the NATS server gone, leaving them for redelivery).
  1  Usage or input error (bad option, unreadable key, invalid push): nothing was sent.
  2  herald push: APNs rejected the push (the reason and what to do are printed).
  3  herald push: not sent, no connection (refused, TLS, proxy, connect timeout): safe to retry.
     herald worker: no NATS server (or no JetStream): nothing was taken.
  4  herald push: sent, but no definitive answer (timeout, connection lost, APNs kept
     answering 429/5xx): APNs may or may not have the push.";

/// The same, in a build without `herald worker` (features `nats` and `bridge`).
#[cfg(not(all(feature = "nats", feature = "bridge")))]
const EXIT_CODES: &str = "\
Exit codes:
  0  herald push: APNs accepted the push.  herald mock: stopped by Ctrl-C or SIGTERM.
  1  Usage or input error (bad option, unreadable key, invalid push): nothing was sent.
  2  herald push: APNs rejected the push (the reason and what to do are printed).
  3  herald push: not sent, no connection (refused, TLS, proxy, connect timeout): safe to retry.
  4  herald push: sent, but no definitive answer (timeout, connection lost, APNs kept
     answering 429/5xx): APNs may or may not have the push.";

/// herald: a typed notification center with an APNs adapter.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mock APNs server (HTTP/2 over TLS, on loopback by default) until Ctrl-C or SIGTERM.
    #[command(after_help = mock_cmd::AFTER_HELP)]
    Mock(Box<mock_cmd::MockArgs>),
    /// Send one push to APNs, or to a mock server, and print the outcome.
    #[command(after_help = EXIT_CODES)]
    Push(Box<push_cmd::PushArgs>),
    /// Take pushes from a NATS JetStream work queue, send them, publish their outcomes.
    #[cfg(all(feature = "nats", feature = "bridge"))]
    #[command(after_help = EXIT_CODES)]
    Worker(Box<worker_cmd::WorkerArgs>),
}

/// The password option (`--password`, `--p12-password`) whose value, in `args`, is another
/// option: the password was left out. A password option takes values that start with `-`, so
/// clap took that option as the password, and then calls the option's own value an unexpected
/// argument; this says what happened instead, naming neither value.
fn password_left_out(args: &[std::ffi::OsString]) -> Option<&'static str> {
    let cli = <Cli as clap::CommandFactory>::command();
    args.windows(2).find_map(|pair| {
        let option = ["--password", "--p12-password"]
            .into_iter()
            .find(|o| pair[0] == *o)?;
        let next = pair[1].to_str()?;
        cli.get_subcommands()
            .any(|sub| apns_options::is_option(sub, next))
            .then_some(option)
    })
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = Cli::try_parse_from(&args);
    // A password option followed by another option, as two words, left the password out,
    // whether or not the rest still parsed (`--password --device X` may parse, with
    // `--device` as the password); clap's own message would blame the words after it. Only
    // the words as typed count: from the environment, or as `--password=--device`, such a
    // value is the password.
    if parsed.as_ref().map_or_else(|e| e.use_stderr(), |_| true)
        && let Some(option) = password_left_out(&args)
    {
        errln!(
            "error: {option}: {}\n\nFor more information, try '--help'.",
            apns_options::PASSWORD_LEFT_OUT
        );
        return ExitCode::from(exit::USAGE);
    }
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; every other parse error is a
            // usage error (clap would exit 2, which here means "rejected by APNs").
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("herald: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Mock(args) => mock_cmd::run(*args).await,
            Command::Push(args) => push_cmd::run(*args).await,
            #[cfg(all(feature = "nats", feature = "bridge"))]
            Command::Worker(args) => worker_cmd::run(*args).await,
        }
    });
    // Connection tasks still running (after a deadline) are dropped, not awaited.
    runtime.shutdown_background();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<std::ffi::OsString> {
        words.iter().map(Into::into).collect()
    }

    #[test]
    fn a_password_option_followed_by_another_option_left_the_password_out() {
        let left_out = |words: &[&str]| password_left_out(&args(words));
        assert_eq!(
            left_out(&["herald", "push", "--password", "--device", "ab"]),
            Some("--password")
        );
        assert_eq!(
            left_out(&["herald", "mock", "--p12-password", "--json"]),
            Some("--p12-password")
        );
        assert_eq!(
            left_out(&["herald", "push", "--password", "-h"]),
            Some("--password")
        );
        for given in [
            &["herald", "push", "--password", "-s3cret", "--device", "ab"][..],
            &["herald", "push", "--password", "--s3cret"],
            &["herald", "push", "--password=--device"],
            &["herald", "push", "--device", "--password"],
        ] {
            assert_eq!(left_out(given), None, "{given:?}");
        }
    }
}
