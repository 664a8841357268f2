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
    if let Some(path) = &args.mailbox.mailbox {
        return mailbox(path, args);
    }
    let cards = card_keys();
    let (mut inspection, input) = outside(args, &cards)?;
    if args.decrypt {
        decrypt_inside(args, verbose, input, &mut inspection)?;
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

/// What was inspected, for the inside: an email whole, an OpenPGP message as a file.
enum Inspected {
    Email(Vec<u8>),
    Message(std::fs::File),
    /// Read as it came (a pipe, without `--decrypt`): nothing kept.
    Gone,
}

/// The outside of the input. An email is read whole (as `cardecrypt mail` does); an OpenPGP
/// message streams by in bounded memory at any size: a file is read again for the inside, a
/// pipe is spooled (ciphertext, unnamed, 0600) only when the inside is wanted.
fn outside(
    args: &InspectArgs,
    cards: &inspect::CardKeys,
) -> Result<(inspect::Inspection, Inspected)> {
    use std::io::{BufRead, Read, Seek};
    let cannot = |e| Error::io("cannot read the message", e);
    let file = match &args.file {
        Some(path) => std::fs::File::open(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?,
        None => std::os::fd::AsFd::as_fd(&std::io::stdin())
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(cannot)?,
    };
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    let mut input = std::io::BufReader::with_capacity(1 << 16, file);
    let email = inspect::is_email(input.fill_buf().map_err(cannot)?);
    if email {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(cannot)?;
        return Ok((inspect::outside(&bytes, cards)?, Inspected::Email(bytes)));
    }
    if !regular && !args.decrypt {
        return Ok((inspect::outside_message(input, cards)?, Inspected::Gone));
    }
    let mut file = if regular {
        input.into_inner()
    } else {
        let mut spool = engine::source::spool_file(None)?;
        std::io::copy(&mut input, &mut spool).map_err(cannot)?;
        spool.rewind().map_err(cannot)?;
        spool
    };
    file.rewind().map_err(cannot)?;
    let inspection = inspect::outside_message(&mut file, cards)?;
    file.rewind().map_err(cannot)?;
    Ok((inspection, Inspected::Message(file)))
}

/// The cards present and their decryption keys, read without a PIN; `None` when pcscd
/// cannot be asked (inspect works without it).
fn card_keys() -> inspect::CardKeys {
    let counter = ApduCounter::default();
    let cards = card::open_all(&mut PcscSource::default(), &counter, false).ok()?;
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
    input: Inspected,
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
        max_plaintext: config.max_plaintext()?,
        show_session_key: false,
        session_key: None,
    };
    let mut ui = Prompter {
        pinentry: config.pinentry.clone(),
        ..Prompter::default()
    };
    // Dropped at the end: the cards forget the PIN sent for this.
    let mut source = PcscSource::default();
    match input {
        Inspected::Email(input) => {
            let mut lengths = Vec::new();
            let outcome = {
                let mut one = |armored: &[u8]| {
                    let (plain, report) =
                        decrypt::decrypt(&mut &armored[..], &mut source, &mut ui, &options)?;
                    lengths.push(plain.len() as u64);
                    Ok((plain, report))
                };
                message::decrypt_message(&input, &mut one, &options.signer_certs)?
            };
            let reports: Vec<_> = outcome.reports.into_iter().zip(lengths).collect();
            inspect::add_inside(inspection, &reports, Some(&outcome.message));
        }
        Inspected::Message(file) => {
            // Described, never shown: the plaintext is measured and dropped as it goes, so a
            // backup of any size is inspected in bounded memory.
            let mut report = decrypt::Report::default();
            let length = decrypt::decrypt_to(
                engine::Input::File(file),
                engine::Dest::Discard,
                &mut source,
                &mut ui,
                &options,
                &mut report,
            )?;
            inspect::add_inside(inspection, &[(report, length)], None);
        }
        Inspected::Gone => return Err(Error::Other("the input was not kept for --decrypt".into())),
    }
    Ok(())
}

/// `--mailbox`: the survey, as text or JSON, and the HTML page; a progress line on a terminal.
fn mailbox(path: &std::path::Path, args: &InspectArgs) -> Result<()> {
    use std::io::IsTerminal;
    let m = &args.mailbox;
    let options = inspect::mailbox::Options {
        recursive: m.recursive,
        by_domain: m.by_domain,
        me: m.me.clone(),
    };
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let survey = inspect::mailbox::survey(path, &options, &mut |n, bytes| progress.show(n, bytes));
    progress.clear();
    let survey = survey?;
    if let Some(html) = &m.html {
        let page = inspect::mailbox::html::render(&survey);
        crate::output::write_file(html, page.as_bytes(), m.overwrite)?;
    }
    let report = if args.json {
        let text =
            serde_json::to_string_pretty(&survey).map_err(|e| Error::Other(e.to_string()))?;
        format!("{text}\n")
    } else {
        inspect::mailbox::text::render(&survey)
    };
    match &m.output {
        Some(file) => crate::output::write_file(file, report.as_bytes(), m.overwrite),
        None => super::print(&report),
    }
}

/// "messages read: 1234 (56.7 MiB)" on standard error, rewritten at most every 200 ms.
struct Progress {
    on: bool,
    last: Option<std::time::Instant>,
}

impl Progress {
    fn new(on: bool) -> Progress {
        Progress { on, last: None }
    }

    fn show(&mut self, messages: u64, bytes: u64) {
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(200));
        if self.on && due {
            self.last = Some(std::time::Instant::now());
            eprint!(
                "\rcardecrypt: messages read: {messages} ({:.1} MiB)",
                bytes as f64 / f64::from(1u32 << 20)
            );
        }
    }

    fn clear(&self) {
        if self.on && self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}
