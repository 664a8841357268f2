//! One file per verb: arguments in, library call, output out.

pub mod card;
pub mod decrypt;
pub mod docs;
pub mod doctor;
pub mod gpg_shim;
pub mod mail;

use crate::{
    card::pin::{PinPolicy, PinSource},
    cli::PinArgs,
};

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
    }
}
