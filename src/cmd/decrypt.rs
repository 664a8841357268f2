//! `cardecrypt [FILE]`: decrypt one message.

use std::io::Write;

use crate::{
    card::{pubkey, PcscSource},
    cli::DecryptArgs,
    decrypt::{self, DecryptOptions, Report},
    error::{Error, Result},
    mail::status::StatusLines,
    output,
    ui::{Interaction, Terminal},
};

pub fn run(args: &DecryptArgs, verbose: bool) -> Result<()> {
    let options = DecryptOptions {
        card: args.card.card.clone(),
        pin: super::pin_policy(&args.pin, args.gpg.passphrase_fd),
        trace: verbose,
        key_cache: pubkey::default_cache_dir(),
    };
    let mut input: Box<dyn std::io::Read> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut ui = Terminal;
    let mut status = StatusLines::open(args.status_fd)?;
    let mut report = Report::default();
    let result =
        decrypt::decrypt_reporting(&mut input, &mut PcscSource, &mut ui, &options, &mut report)
            .and_then(|plaintext| write_out(args, &plaintext).map(|()| plaintext.len()));
    match &result {
        Ok(len) => status.decrypt(&report, *len, Ok(())),
        Err(e) => status.decrypt(&report, 0, Err(e)),
    }
    result?;
    if let Some(keep) = args.keep_unlocked.filter(|k| !k.is_zero()) {
        // Holding the card cannot spoil a decrypt that succeeded: say so and go on.
        match crate::card::holder::start(&report.reader, &report.card, keep) {
            Ok(()) if verbose => ui.note(&format!(
                "card {} stays unlocked for {} s (cardecrypt lock ends it)",
                report.card,
                keep.as_secs()
            )),
            Ok(()) => {}
            Err(e) => ui.note(&format!("cannot keep the card unlocked: {e}")),
        }
    }
    if report.signatures > 0 {
        ui.note("the message is signed; the signature was NOT checked");
    }
    if verbose {
        ui.note(&format!(
            "decrypted with card {} key {} using {} APDUs",
            report.card, report.key_fingerprint, report.apdus
        ));
    }
    Ok(())
}

fn write_out(args: &DecryptArgs, plaintext: &[u8]) -> Result<()> {
    match args.output.as_deref() {
        Some(path) if path != std::path::Path::new("-") => {
            output::write_file(path, plaintext, args.overwrite || args.gpg.yes)
        }
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(plaintext)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("cannot write to standard output", e))
        }
    }
}
