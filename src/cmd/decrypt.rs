//! `cardecrypt [FILE]`: decrypt one message.

use std::io::Write;

use crate::{
    card::{pubkey, PcscSource},
    cli::DecryptArgs,
    decrypt::{self, DecryptOptions},
    error::{Error, Result},
    output,
    ui::{Interaction, Terminal},
};

pub fn run(args: &DecryptArgs, verbose: bool) -> Result<()> {
    let options = DecryptOptions {
        card: args.card.card.clone(),
        pin: super::pin_policy(&args.pin),
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
    let (plaintext, report) = decrypt::decrypt(&mut input, &mut PcscSource, &mut ui, &options)?;
    if report.signatures > 0 {
        ui.note("the message is signed; the signature was NOT checked");
    }
    if verbose {
        ui.note(&format!(
            "decrypted with card {} key {} using {} APDUs",
            report.card, report.key_fingerprint, report.apdus
        ));
    }
    match &args.output {
        Some(path) => output::write_file(path, &plaintext, args.overwrite),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&plaintext)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("cannot write to standard output", e))
        }
    }
}
