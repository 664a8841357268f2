//! `cardecrypt inspect [FILE]`: what a message or email reveals.

use crate::{
    card::{self, link::ApduCounter, CardInfo, PcscSource},
    cli::InspectArgs,
    config::Config,
    decrypt::{self, DecryptOptions},
    engine,
    error::{Error, Result},
    inspect,
    mail::message,
    prompt::Prompter,
    verify,
};

pub fn run(args: &InspectArgs, verbose: bool) -> Result<()> {
    let input = super::read_input(args.file.as_deref())?;
    let mut inspection = inspect::outside(&input, &card_keys())?;
    if args.decrypt {
        decrypt_inside(args, verbose, &input, &mut inspection)?;
    }
    if args.json {
        let text =
            serde_json::to_string_pretty(&inspection).map_err(|e| Error::Other(e.to_string()))?;
        super::print(&format!("{text}\n"))?;
    } else {
        super::print(&inspect::render(&inspection))?;
    }
    Ok(())
}

/// The cards present and their decryption keys, read without a PIN; `None` when pcscd
/// cannot be asked (inspect works without it).
fn card_keys() -> inspect::CardKeys {
    let counter = ApduCounter::default();
    let cards = card::open_all(&mut PcscSource, &counter, false).ok()?;
    let mut keys = Vec::new();
    for mut open in cards {
        let Ok(mut tx) = open.card.transaction() else {
            continue;
        };
        if let Ok(info) = CardInfo::read(&mut tx) {
            if let Some(slot) = &info.decryption {
                let hex: String = slot
                    .fingerprint
                    .as_bytes()
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect();
                keys.push((info.ident, hex));
            }
        }
    }
    Some(keys)
}

fn decrypt_inside(
    args: &InspectArgs,
    verbose: bool,
    input: &[u8],
    inspection: &mut inspect::Inspection,
) -> Result<()> {
    let config = Config::load()?;
    let mut keyrings = config.signer_certs.clone();
    keyrings.extend(args.signer_certs.iter().cloned());
    let options = DecryptOptions {
        card: args.card.card.clone(),
        pin: super::pin_policy(&args.pin, None),
        trace: verbose,
        key_cache: crate::card::pubkey::default_cache_dir(),
        signer_certs: verify::load_certs(&keyrings)?,
        spool_dir: None,
        unwrap: false,
        progress: None,
    };
    let mut ui = Prompter {
        pinentry: config.pinentry.clone(),
        ..Prompter::default()
    };
    if inspection.kind == "email" {
        let mut lengths = Vec::new();
        let outcome = {
            let mut one = |armored: &[u8]| {
                let (plain, report) =
                    decrypt::decrypt(&mut &armored[..], &mut PcscSource, &mut ui, &options)?;
                lengths.push(plain.len() as u64);
                Ok((plain, report))
            };
            message::decrypt_message(input, &mut one, &options.signer_certs)?
        };
        let reports: Vec<_> = outcome.reports.into_iter().zip(lengths).collect();
        inspect::add_inside(inspection, &reports, Some(&outcome.message));
    } else {
        // Described, never shown: the plaintext is measured and dropped as it goes, so a
        // backup of any size is inspected in bounded memory.
        let input = match &args.file {
            Some(path) => engine::Input::open(Some(path))?,
            None => engine::Input::Stream(Box::new(std::io::Cursor::new(input.to_vec()))),
        };
        let mut report = decrypt::Report::default();
        let length = decrypt::decrypt_to(
            input,
            engine::Dest::Discard,
            &mut PcscSource,
            &mut ui,
            &options,
            &mut report,
        )?;
        inspect::add_inside(inspection, &[(report, length)], None);
    }
    Ok(())
}
