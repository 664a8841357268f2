//! `cardecrypt inspect --mailbox`: what a whole maildir or mbox gives away to whoever holds
//! it (the provider, or anyone who gets its records), in total, per month, per correspondent
//! and for the user's own mail. Only headers and the encrypted parts' outer packets are
//! read, one message at a time; nothing is decrypted, no body is kept or shown.
//! - [`source`]: finding mailboxes and reading their messages
//! - `tally`: counting what each message gives away
//! - [`text`] and [`html`]: the reports

pub mod html;
pub mod source;
mod tally;
pub mod text;

use serde::Serialize;

pub use tally::Tally;

use crate::error::Result;

/// The JSON form's version: changes only when a field changes meaning or goes away.
pub const JSON_VERSION: u32 = 1;

/// What to look at and how to group it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Walk every maildir and mbox under the path.
    pub recursive: bool,
    /// Group correspondents by the domain of their address.
    pub by_domain: bool,
    /// The user's own addresses; empty: the mail of a Sent folder is the user's.
    pub me: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Survey {
    pub version: u32,
    pub mailboxes: Vec<String>,
    pub messages: u64,
    pub bytes: u64,
    pub kinds: Kinds,
    /// PGP/MIME or inline: the messages the leaks below are counted over.
    pub encrypted: u64,
    /// Encrypted containers by kind ("SEIPDv1", "SEIPDv2", "SED", ...), one per message.
    pub containers: Vec<Count>,
    /// Across encrypted mail, most first.
    pub leaks: Vec<LeakCount>,
    pub months: Vec<Month>,
    /// Most leaking first.
    pub correspondents: Vec<Correspondent>,
    /// The user's own mail (From one of `--me`, or a Sent folder's), with the settings to
    /// change.
    pub me: Option<Correspondent>,
    pub malformed: Vec<Malformed>,
    /// Messages larger than the part that was read of them.
    pub partly_read: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Kinds {
    pub pgp_mime: u64,
    pub inline: u64,
    pub signed_only: u64,
    pub clear: u64,
    pub malformed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub value: String,
    pub count: u64,
}

/// One kind of leak over a set of messages.
#[derive(Debug, Clone, Serialize)]
pub struct LeakCount {
    /// As in `inspect::leaks::KINDS`.
    pub kind: String,
    pub label: String,
    pub messages: u64,
    /// Of the encrypted messages counted over, 0 to 1.
    pub share: f64,
    /// The values seen (software names, addresses, file names, time zones), most first.
    pub details: Vec<Count>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Month {
    /// "2026-11", or "unknown" for a missing or unreadable Date.
    pub month: String,
    pub messages: u64,
    pub encrypted: u64,
    /// Encrypted messages with the subject in the clear.
    pub subject_in_clear: u64,
    /// Encrypted messages with any leak.
    pub leaking: u64,
}

/// One correspondent (an address, or a domain with `--by-domain`), or the user.
#[derive(Debug, Clone, Serialize)]
pub struct Correspondent {
    pub who: String,
    pub messages: u64,
    pub encrypted: u64,
    /// How their mail came: "PGP/MIME, SEIPDv1", "inline PGP, SED", "signed only", "clear".
    pub how: Vec<Count>,
    /// Over their encrypted mail, most first; `not_encrypted` over all of it.
    pub leaks: Vec<LeakCount>,
    /// The software their mail names.
    pub software: Vec<Count>,
    /// The one or two changes on their side that would leak the most less; for the user,
    /// every setting to change.
    pub changes: Vec<String>,
}

/// A message that could not be taken apart.
#[derive(Debug, Clone, Serialize)]
pub struct Malformed {
    /// The file, and for an mbox the line its message starts on.
    pub location: String,
    pub why: String,
}

/// Reads every message of every mailbox at `path`; `progress` is called now and then with
/// the messages and bytes read so far.
pub fn survey(
    path: &std::path::Path,
    options: &Options,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Survey> {
    let mailboxes = source::find(path, options.recursive)?;
    let mut tally = Tally::new(options);
    for mailbox in &mailboxes {
        let all_mine = options.me.is_empty() && mailbox.is_sent_folder();
        source::messages(mailbox, &mut |message| {
            match message {
                Ok(m) => tally.add(&m, all_mine),
                Err((location, why)) => tally.unreadable(location, why),
            }
            progress(tally.messages(), tally.bytes());
        })?;
    }
    let names = mailboxes
        .iter()
        .map(|m| m.path().display().to_string())
        .collect();
    Ok(tally.finish(names))
}
