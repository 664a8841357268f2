use std::process::ExitCode;

use cardecrypt::{error::exit, Error};
use clap::Parser;

fn main() -> ExitCode {
    let cli = match cardecrypt::cli::Cli::try_parse() {
        Ok(cli) => cli,
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
