//! One file per verb: arguments in, library call, output out.

pub mod card;
pub mod decrypt;
pub mod docs;
pub mod doctor;
pub mod gpg_shim;
pub mod inspect;
pub mod mail;

use crate::{
    card::pin::{PinPolicy, PinSource},
    cli::PinArgs,
};

/// The whole input: the file, or standard input when there is none.
pub(crate) fn read_input(file: Option<&std::path::Path>) -> crate::error::Result<Vec<u8>> {
    use std::io::Read;
    let mut input = Vec::new();
    match file {
        Some(path) => std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut input))
            .map_err(|e| crate::error::Error::io(format!("cannot read {}", path.display()), e))?,
        None => std::io::stdin()
            .lock()
            .read_to_end(&mut input)
            .map_err(|e| crate::error::Error::io("cannot read the message", e))?,
    };
    Ok(input)
}

/// Writes a command's report to standard output. Not `println!`: that panics when the
/// reader went away (`| head`); here it is an error, which `main` turns into exit 0.
pub(crate) fn print(text: &str) -> crate::error::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| crate::error::Error::io("cannot write to standard output", e))
}

pub(crate) fn pin_policy(args: &PinArgs, passphrase_fd: Option<i32>) -> PinPolicy {
    let source = match (&args.pin_file, args.pin_fd.or(passphrase_fd)) {
        (Some(f), _) => PinSource::File(f.clone()),
        (None, Some(fd)) => PinSource::Fd(fd),
        (None, None) => PinSource::Ask,
    };
    PinPolicy {
        source,
        batch: args.batch,
        allow_last_try: args.allow_last_pin_try,
        memory: Default::default(),
    }
}
