//! `cardecrypt [FILE]`: decrypt one message.

use std::io::Write;

use crate::{
    card::{pubkey, PcscSource},
    cli::{DecryptArgs, ReadArgs},
    config::Config,
    decrypt::{self, DecryptOptions, Report},
    engine,
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
    let input = engine::Input::open(args.file.as_deref())?;
    let mut ui = Terminal {
        pinentry: config.pinentry.clone(),
        loopback,
    };
    let mut status = StatusLines::open(args.status_fd)?;
    let mut report = Report::default();
    let overwrite = args.read.overwrite || args.gpg.yes;
    let result = decrypt_to(
        input,
        args.read.output.as_deref(),
        overwrite,
        &mut ui,
        &options,
        &mut report,
    );
    status.pin_announced = ui.loopback.as_ref().is_some_and(|l| l.asked);
    match &result {
        Ok(len) => status.decrypt(&report, *len as usize, Ok(())),
        Err(e) => status.decrypt(&report, 0, Err(e)),
    }
    result?;
    if let Some(weak) = report.weak_cipher {
        ui.note(&format!(
            "note: encrypted with {weak}: read it, but ask the sender to update their \
             OpenPGP program"
        ));
    }
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
        spool_dir: read.spool_dir.clone(),
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

/// Decrypts to FILE (new, 0600, named only once complete), into an existing device or FIFO
/// (after authentication, as gpg does), or to standard output.
fn decrypt_to(
    input: engine::Input,
    path: Option<&std::path::Path>,
    overwrite: bool,
    ui: &mut dyn Interaction,
    options: &DecryptOptions,
    report: &mut Report,
) -> Result<u64> {
    let path = path.filter(|p| *p != std::path::Path::new("-"));
    let mut source = PcscSource;
    match path {
        Some(path) if matches!(output::existing(path), output::Existing::Special) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            let dest = engine::Dest::Stream(&mut file);
            decrypt::decrypt_to(input, dest, &mut source, ui, options, report)
        }
        Some(path) => {
            let dest = engine::Dest::File(output::PendingFile::create(path, overwrite)?);
            decrypt::decrypt_to(input, dest, &mut source, ui, options, report)
        }
        None => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let n = decrypt::decrypt_to(
                input,
                engine::Dest::Stream(&mut out),
                &mut source,
                ui,
                options,
                report,
            )?;
            out.flush()
                .map_err(|e| Error::io("cannot write to standard output", e))?;
            Ok(n)
        }
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
