//! `cardecrypt [FILE]`: decrypt one message.

use std::io::Write;

use crate::{
    card::{pubkey, PcscSource},
    cli::{DecryptArgs, ReadArgs},
    config::Config,
    decrypt::{self, DecryptOptions, Report},
    error::{Error, Result},
    mail::status::StatusLines,
    output,
    ui::{Interaction, Terminal},
    verify,
};

pub fn run(args: &DecryptArgs, verbose: bool) -> Result<()> {
    let config = Config::load()?;
    let loopback = args.gpg.loopback(args.status_fd);
    let mut pin = super::pin_policy(&args.read.pin, args.gpg.passphrase_fd);
    // The caller that speaks the loopback protocol is asked, --batch or not (as gpg does).
    pin.batch &= loopback.is_none();
    let options = options(&args.read, pin, &config, verbose)?;
    let mut input: Box<dyn std::io::Read> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut ui = Terminal {
        pinentry: config.pinentry.clone(),
        loopback,
    };
    let mut status = StatusLines::open(args.status_fd)?;
    let mut report = Report::default();
    let result =
        decrypt::decrypt_reporting(&mut input, &mut PcscSource, &mut ui, &options, &mut report)
            .and_then(|plaintext| {
                let overwrite = args.read.overwrite || args.gpg.yes;
                write_out(args.read.output.as_deref(), overwrite, &plaintext)
                    .map(|()| plaintext.len())
            });
    status.pin_announced = ui.loopback.as_ref().is_some_and(|l| l.asked);
    match &result {
        Ok(len) => status.decrypt(&report, *len, Ok(())),
        Err(e) => status.decrypt(&report, 0, Err(e)),
    }
    result?;
    keep_unlocked(&args.read, &config, &report, verbose, &mut ui);
    let have_certs = !options.signer_certs.is_empty();
    for check in &report.signatures {
        ui.note(&check.summary(have_certs));
    }
    if verbose {
        ui.note(&format!(
            "decrypted with card {} key {} using {} APDUs",
            report.card, report.key_fingerprint, report.apdus
        ));
    }
    Ok(())
}

/// Decrypt options from the command line and the config file.
pub(crate) fn options(
    read: &ReadArgs,
    pin: crate::card::pin::PinPolicy,
    config: &Config,
    verbose: bool,
) -> Result<DecryptOptions> {
    let mut keyrings = config.signer_certs.clone();
    keyrings.extend(read.signer_certs.iter().cloned());
    Ok(DecryptOptions {
        card: read.card.card.clone(),
        pin,
        trace: verbose,
        key_cache: pubkey::default_cache_dir(),
        signer_certs: verify::load_certs(&keyrings)?,
    })
}

/// After a decrypt that succeeded: leave the card unlocked if asked (command line, else
/// config file). Holding the card cannot spoil that decrypt, so a failure here is a note,
/// not an error.
pub(crate) fn keep_unlocked(
    read: &ReadArgs,
    config: &Config,
    report: &Report,
    verbose: bool,
    ui: &mut dyn Interaction,
) {
    let keep = read.keep_unlocked.or(config.keep_unlocked);
    let Some(keep) = keep.filter(|k| !k.is_zero()) else {
        return;
    };
    if report.card.is_empty() {
        return;
    }
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

/// Writes complete output to FILE (new, 0600) or standard output.
pub(crate) fn write_out(
    path: Option<&std::path::Path>,
    overwrite: bool,
    data: &[u8],
) -> Result<()> {
    match path {
        Some(path) if path != std::path::Path::new("-") => {
            output::write_file(path, data, overwrite)
        }
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("cannot write to standard output", e))
        }
    }
}
