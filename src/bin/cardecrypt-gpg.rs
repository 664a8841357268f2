//! `cardecrypt-gpg`: cardecrypt standing in for gpg and gpgconf (see `cardecrypt::gpg`).

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(cardecrypt::gpg::main(std::env::args_os().collect()))
}
