//! `cardecrypt mail [FILE]`: decrypt a whole email.

use super::decrypt::{keep_asked, keep_unlocked, options, release, write_out};
use crate::{
    card::PcscSource, cli::MailArgs, config::Config, decrypt, error::Result, mail::message,
    prompt::Prompter, ui::Interaction, Done,
};

pub fn run(args: &MailArgs, verbose: bool) -> Result<Done> {
    let config = Config::load()?;
    let options = options(
        &args.read,
        super::pin_policy(&args.read.pin, None),
        &config,
        verbose,
    )?;
    let input = super::read_input(args.file.as_deref())?;
    let mut ui = Prompter {
        pinentry: config.pinentry.clone(),
        loopback: None,
        ..Prompter::default()
    };
    let mut source = PcscSource::keeping_pw1(keep_asked(&args.read, &config).is_some());
    let outcome = {
        let mut decrypt_one =
            |armored: &[u8]| decrypt::decrypt(&mut &armored[..], &mut source, &mut ui, &options);
        message::decrypt_message(&input, &mut decrypt_one, &options.signer_certs)
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            release(&mut source, false, &mut ui);
            return Err(e);
        }
    };
    write_out(
        args.read.output.as_deref(),
        args.read.overwrite,
        &outcome.message,
    )?;
    if !outcome.encrypted() {
        ui.note("the message is not encrypted; it was written unchanged");
        return Ok(Done::NotEncrypted);
    }
    for report in &outcome.reports {
        super::decrypt::weak_cipher_note(report, &mut ui);
        super::decrypt::session_key_note(report, &mut ui);
    }
    // As for one message: the card the last part was decrypted with stays unlocked.
    let kept = outcome.reports.last().is_some_and(|report| {
        keep_unlocked(&args.read, &config, report, &source, verbose, &mut ui)
    });
    release(&mut source, kept, &mut ui);
    let have_certs = !options.signer_certs.is_empty();
    let signatures = outcome
        .reports
        .iter()
        .flat_map(|r| r.signatures.iter())
        .chain(&outcome.mime_signatures);
    for check in signatures {
        ui.note(&check.summary(have_certs));
    }
    if verbose {
        for r in &outcome.reports {
            ui.note(&format!(
                "decrypted a part with card {} key {} using {} APDUs",
                r.card, r.key_fingerprint, r.apdus
            ));
        }
        if outcome.protected_headers {
            ui.note("protected headers replaced the outer ones");
        }
    }
    Ok(Done::Success)
}
