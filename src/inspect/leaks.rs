//! The one place that decides what an email or message gives away: each [`Leak`] found in
//! its outside, with the advice for one message, the change a correspondent could make, and
//! the setting to change in one's own client. `inspect FILE` and `inspect --mailbox` both
//! read their findings from here.

use super::{email::EmailFacts, openpgp::MessageFacts};

/// One thing the outside of a message gives away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leak {
    /// The subject travels in the clear (no placeholder, so no header protection).
    SubjectInClear,
    /// An encrypted session key names its recipient's key id.
    RecipientKeyIds,
    /// More than one recipient in To/Cc.
    OtherRecipients(usize),
    /// The armor names the sender's OpenPGP software (`Version:` or `Comment:`).
    ArmorSoftware(String),
    /// User-Agent or X-Mailer names the mail client.
    MailClient(String),
    /// The sender's IP address, and the field that shows it.
    SenderAddress { ip: String, field: String },
    /// Parts readable without the key (file names, or content types where unnamed).
    PartsOutside(Vec<String>),
    /// SED: no integrity protection at all.
    NoIntegrity,
    /// SEIPD v1: integrity only at the end (SHA-1 MDC).
    SeipdV1,
    /// Inline PGP: the structure and attachments stay readable.
    InlinePgp,
    /// An Autocrypt header: the sender's key travels with every message.
    Autocrypt,
    /// The Date names a time zone other than UTC.
    TimeZone(String),
    /// Nothing in the email is encrypted.
    NotEncrypted,
}

/// Every kind of leak, weightiest first: reports list them in this order when counts tie,
/// so a correspondent's first change is the one that matters most.
pub const KINDS: &[&str] = &[
    "not_encrypted",
    "no_integrity",
    "subject_in_clear",
    "parts_outside",
    "inline_pgp",
    "recipient_key_ids",
    "sender_address",
    "seipd_v1",
    "sender_software",
    "other_recipients",
    "time_zone",
    "autocrypt",
];

impl Leak {
    /// The kind, as named in JSON and in [`KINDS`]; several leaks can share one.
    pub fn kind(&self) -> &'static str {
        match self {
            Leak::SubjectInClear => "subject_in_clear",
            Leak::RecipientKeyIds => "recipient_key_ids",
            Leak::OtherRecipients(_) => "other_recipients",
            Leak::ArmorSoftware(_) | Leak::MailClient(_) => "sender_software",
            Leak::SenderAddress { .. } => "sender_address",
            Leak::PartsOutside(_) => "parts_outside",
            Leak::NoIntegrity => "no_integrity",
            Leak::SeipdV1 => "seipd_v1",
            Leak::InlinePgp => "inline_pgp",
            Leak::Autocrypt => "autocrypt",
            Leak::TimeZone(_) => "time_zone",
            Leak::NotEncrypted => "not_encrypted",
        }
    }

    /// The values worth listing in a summary (software names, addresses, file names, ...).
    pub fn details(&self) -> Vec<String> {
        match self {
            Leak::ArmorSoftware(s) | Leak::MailClient(s) | Leak::TimeZone(s) => vec![s.clone()],
            Leak::SenderAddress { ip, .. } => vec![ip.clone()],
            Leak::PartsOutside(names) => names.clone(),
            _ => Vec::new(),
        }
    }

    /// The advice for one message, as `inspect FILE` gives it.
    pub fn advice(&self) -> Option<String> {
        Some(match self {
            Leak::SubjectInClear => "The subject travels in the clear: header protection (RFC \
                                     9788) would put it inside and show \"...\" outside."
                .into(),
            Leak::RecipientKeyIds => "The recipients' key ids are visible: hidden recipients \
                                      (gpg --throw-keyids, or -R per recipient) would not say \
                                      who can read it."
                .into(),
            Leak::OtherRecipients(n) => format!(
                "All {n} recipients in To/Cc are visible to the provider: Bcc, or one message \
                 per recipient, would hide who else got it."
            ),
            Leak::ArmorSoftware(_) => "The sender's software named itself in the armor \
                                       (Version:/Comment:): gpg --no-emit-version \
                                       --no-comments leaves that out."
                .into(),
            Leak::MailClient(ua) => format!(
                "The mail client named itself ({ua}): many clients can leave User-Agent out."
            ),
            Leak::SenderAddress { ip, field } if field == "Received" => format!(
                "The first Received: hop shows the sender's address {ip}: a submission server \
                 that drops it, or Tor/VPN, would not."
            ),
            Leak::SenderAddress { ip, field } => format!(
                "The {field} field shows the sender's address {ip}: a provider that leaves it \
                 out, or Tor/VPN, would not."
            ),
            Leak::PartsOutside(names) => format!(
                "{} part(s) travel outside the encryption: attach files inside the encrypted \
                 message (PGP/MIME) instead.",
                names.len()
            ),
            Leak::NoIntegrity => "No integrity protection (SED): anyone on the way could have \
                                  changed it; ask for a current OpenPGP program."
                .into(),
            Leak::SeipdV1 => "SEIPD v1 checks integrity only at the end (SHA-1 MDC): SEIPD v2 \
                              (RFC 9580 AEAD) authenticates every chunk."
                .into(),
            Leak::InlinePgp => "Inline PGP leaves the message's structure and attachments \
                                readable: PGP/MIME encrypts the whole body."
                .into(),
            Leak::TimeZone(tz) => {
                format!("The Date shows the sender's time zone ({tz}): clients can send it in UTC.")
            }
            Leak::NotEncrypted => "Nothing in this email is encrypted.".into(),
            Leak::Autocrypt => return None,
        })
    }
}

/// What one kind of leak is called in a report.
pub fn label(kind: &str) -> &'static str {
    match kind {
        "subject_in_clear" => "subject in the clear",
        "recipient_key_ids" => "recipients' key ids visible",
        "sender_software" => "sender software named",
        "sender_address" => "sender's IP address shown",
        "parts_outside" => "parts outside the encryption",
        "no_integrity" => "no integrity protection (SED)",
        "seipd_v1" => "SEIPD v1 (integrity only at the end)",
        "inline_pgp" => "inline PGP (structure readable)",
        "other_recipients" => "other recipients visible",
        "time_zone" => "time zone shown",
        "autocrypt" => "Autocrypt header (key attached)",
        "not_encrypted" => "not encrypted",
        _ => "other",
    }
}

/// The change a correspondent could make on their side, in a few words.
pub fn their_change(kind: &str) -> &'static str {
    match kind {
        "subject_in_clear" => "protect the subject",
        "recipient_key_ids" => "hide recipients",
        "sender_software" => "drop the Version and User-Agent headers",
        "sender_address" => "send through a server that drops their IP",
        "parts_outside" => "attach files inside the encryption",
        "no_integrity" => "update their OpenPGP program (SED)",
        "seipd_v1" => "move to SEIPD v2 (RFC 9580)",
        "inline_pgp" => "use PGP/MIME instead of inline PGP",
        "other_recipients" => "use Bcc",
        "time_zone" => "send the Date in UTC",
        "autocrypt" => "leave out the Autocrypt header",
        "not_encrypted" => "encrypt",
        _ => "",
    }
}

/// The setting to change in one's own mail client or gpg.conf.
pub fn my_setting(kind: &str) -> &'static str {
    match kind {
        "subject_in_clear" => {
            "turn on encrypted subjects (Thunderbird: \"Encrypt subject\"; neomutt: set \
             crypt_protected_headers_write=yes)"
        }
        "recipient_key_ids" => "add throw-keyids to gpg.conf (or hidden-recipient per key)",
        "sender_software" => {
            "add no-emit-version and no-comments to gpg.conf; stop sending User-Agent \
             (neomutt: set user_agent=no; Thunderbird: mailnews.headers.sendUserAgent=false)"
        }
        "sender_address" => "submit mail through a server that drops your IP, or over Tor/VPN",
        "parts_outside" => "attach files before encrypting (PGP/MIME), not beside it",
        "no_integrity" => "update the program that encrypts (it writes SED)",
        "seipd_v1" => "use a program that writes SEIPD v2 (RFC 9580)",
        "inline_pgp" => "switch to PGP/MIME",
        "other_recipients" => "put recipients who need not see each other in Bcc",
        "time_zone" => "send the Date in UTC (Thunderbird: privacy.resistFingerprinting)",
        "autocrypt" => "turn off Autocrypt if you do not want your key in every message",
        "not_encrypted" => "encrypt by default where you have the recipient's key",
        _ => "",
    }
}

/// What the OpenPGP message `m` gives away.
pub fn of_message(m: &MessageFacts) -> Vec<Leak> {
    let mut out = Vec::new();
    if m.recipients.iter().any(|r| r.key_id.is_some()) {
        out.push(Leak::RecipientKeyIds);
    }
    if let Some((k, v)) = m
        .armor_headers
        .iter()
        .find(|(k, _)| k == "Version" || k == "Comment")
    {
        out.push(Leak::ArmorSoftware(format!("{k}: {v}")));
    }
    match m.container.as_ref().map(|c| c.kind.as_str()) {
        Some("SED") => out.push(Leak::NoIntegrity),
        Some("SEIPDv1") => out.push(Leak::SeipdV1),
        _ => {}
    }
    out
}

/// What the email `e` gives away: its header fields, its parts, and every OpenPGP message
/// in it (each leak once).
pub fn of_email(e: &EmailFacts) -> Vec<Leak> {
    let mut out: Vec<Leak> = Vec::new();
    let mut push = |l: Leak| {
        if !out.contains(&l) {
            out.push(l);
        }
    };
    for m in &e.encrypted {
        of_message(m).into_iter().for_each(&mut push);
    }
    if e.subject.is_some() && !e.subject_placeholder {
        push(Leak::SubjectInClear);
    }
    if e.to.len() + e.cc.len() > 1 {
        push(Leak::OtherRecipients(e.to.len() + e.cc.len()));
    }
    if let Some(ua) = &e.user_agent {
        push(Leak::MailClient(ua.clone()));
    }
    if let Some(ip) = e.received.last().and_then(|hop| hop.ips.first()) {
        push(Leak::SenderAddress {
            ip: ip.clone(),
            field: "Received".into(),
        });
    } else if let Some((field, ip)) = e
        .revealing
        .iter()
        .find(|(k, v)| k.ends_with("-IP") && bare_ip(v).parse::<std::net::IpAddr>().is_ok())
    {
        push(Leak::SenderAddress {
            ip: bare_ip(ip).to_string(),
            field: field.clone(),
        });
    }
    if let Some(tz) = &e.timezone {
        if !matches!(tz.as_str(), "+0000" | "-0000" | "UTC" | "GMT" | "Z") {
            push(Leak::TimeZone(tz.clone()));
        }
    }
    if e.clear_parts > 0 && !e.encrypted.is_empty() {
        push(Leak::PartsOutside(outside_names(e)));
    }
    if e.parts.iter().any(|p| p.protection == "inline-pgp") {
        push(Leak::InlinePgp);
    }
    if e.autocrypt {
        push(Leak::Autocrypt);
    }
    if e.encrypted.is_empty() {
        push(Leak::NotEncrypted);
    }
    out
}

/// The parts readable without the key: their file names, or content types where unnamed.
fn outside_names(e: &EmailFacts) -> Vec<String> {
    e.parts
        .iter()
        .filter(|p| {
            p.protection == "clear"
                && !p.content_type.starts_with("multipart/")
                && p.content_type != "application/pgp-encrypted"
        })
        .map(|p| p.filename.clone().unwrap_or_else(|| p.content_type.clone()))
        .collect()
}

/// "198.51.100.7" from "[198.51.100.7]" (as X-Originating-IP writes it).
fn bare_ip(value: &str) -> &str {
    value.trim().trim_start_matches('[').trim_end_matches(']')
}
