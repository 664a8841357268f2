use std::process::ExitCode;

use cardecrypt::{error::exit, Error};
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let parsed = cardecrypt::cli::Cli::command()
        .try_get_matches()
        .and_then(|m| cardecrypt::cli::Cli::from_arg_matches(&m).map(|cli| (m, cli)));
    let cli = match parsed {
        Ok((matches, cli)) => {
            let misplaced = cardecrypt::cli::misplaced_options(&matches);
            if !misplaced.is_empty() {
                eprintln!(
                    "cardecrypt: options before the subcommand are not used: {}",
                    misplaced.join(", ")
                );
                return ExitCode::from(exit::USAGE);
            }
            cli
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match cardecrypt::run(cli) {
        Ok(done) => ExitCode::from(done.exit_code()),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            eprintln!("cardecrypt: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("cardecrypt: hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
