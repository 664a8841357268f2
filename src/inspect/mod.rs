//! `cardecrypt inspect`: what a message gives away to anyone who holds it, what only the card
//! opens, and what would have revealed less. The outside needs no card, PIN or pcscd; with
//! `--decrypt` the card decrypts as usual (same PIN and authentication rules), and the
//! inside is described, never its body text.
//! - [`openpgp`]: the outside of an OpenPGP message
//! - [`email`]: the outside of an email

pub mod email;
pub mod openpgp;

use serde::Serialize;

use crate::{
    decrypt::Report,
    engine::{aead, symmetric},
    error::Result,
    mail::mime::Entity,
    verify::Verdict,
};

/// The JSON form's version: changes only when a field changes meaning or goes away.
pub const JSON_VERSION: u32 = 1;

/// One encrypted piece as the card holder sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Inside {
    pub cipher: Option<String>,
    pub aead: Option<String>,
    pub compression: Option<String>,
    /// The literal packet: its format ("binary", "text", "utf-8"), file name, date.
    pub literal_format: Option<String>,
    pub literal_filename: Option<String>,
    pub literal_date: Option<String>,
    pub signatures: Vec<SignatureFacts>,
    /// The old cipher, if it is one.
    pub weak_cipher: Option<String>,
    pub plaintext_length: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignatureFacts {
    pub key_id: String,
    pub fingerprint: Option<String>,
    /// "good", "bad", "no certificate", or why it could not be checked.
    pub verdict: String,
}

/// The inside of an email (with `--decrypt`).
#[derive(Debug, Clone, Serialize)]
pub struct EmailInside {
    /// Header fields the encrypted part carried (RFC 9788 / protected-headers="v1").
    pub protected_headers: Vec<(String, String)>,
    /// Protected fields whose value differs from the outer one: (name, outer, inner).
    pub differs_from_outer: Vec<(String, Option<String>, String)>,
    /// The decrypted MIME structure.
    pub parts: Vec<email::Part>,
}

/// What `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub version: u32,
    /// "openpgp" or "email".
    pub kind: String,
    pub size: u64,
    /// A bare OpenPGP message.
    pub message: Option<openpgp::MessageFacts>,
    pub email: Option<email::EmailFacts>,
    /// With `--decrypt`: one per encrypted piece.
    pub inside: Option<Vec<Inside>>,
    pub email_inside: Option<EmailInside>,
    pub advice: Vec<String>,
}

/// The cards present, as (ident, decryption key fingerprint), when pcscd could be asked.
pub type CardKeys = Option<Vec<(String, String)>>;

/// Looks at `input`: an email when it starts with header fields, else an OpenPGP message.
pub fn outside(input: &[u8], cards: &CardKeys) -> Result<Inspection> {
    if is_email(input) {
        let mut facts = email::read(input);
        for m in &mut facts.encrypted {
            mark_cards(m, cards);
        }
        let mut inspection = Inspection {
            version: JSON_VERSION,
            kind: "email".into(),
            size: input.len() as u64,
            message: None,
            email: Some(facts),
            inside: None,
            email_inside: None,
            advice: Vec::new(),
        };
        inspection.advice = advice(&inspection);
        Ok(inspection)
    } else {
        outside_message(input, cards)
    }
}

/// Looks at the OpenPGP message `input` as it streams by (bounded memory at any size).
pub fn outside_message(
    input: impl std::io::Read + Send + Sync,
    cards: &CardKeys,
) -> Result<Inspection> {
    let mut m = openpgp::read_from(input)?;
    mark_cards(&mut m, cards);
    let mut inspection = Inspection {
        version: JSON_VERSION,
        kind: "openpgp".into(),
        size: m.size,
        message: Some(m),
        email: None,
        inside: None,
        email_inside: None,
        advice: Vec::new(),
    };
    inspection.advice = advice(&inspection);
    Ok(inspection)
}

/// Adds what the card holder sees: `reports` from decrypting each piece, and for an email
/// the decrypted message (headers restored) to compare with the outside.
pub fn add_inside(
    inspection: &mut Inspection,
    reports: &[(Report, u64)],
    decrypted: Option<&[u8]>,
) {
    inspection.inside = Some(reports.iter().map(|(r, len)| inside(r, *len)).collect());
    if let (Some(outer), Some(bytes)) = (&inspection.email, decrypted) {
        let e = Entity::parse(bytes);
        let names = [
            "Subject",
            "From",
            "To",
            "Cc",
            "Date",
            "Message-ID",
            "Reply-To",
        ];
        let protected: Vec<(String, String)> = names
            .iter()
            .filter_map(|n| Some((n.to_string(), e.field(n)?.value().trim().to_string())))
            .collect();
        let outer_value = |name: &str| -> Option<String> {
            match name {
                "Subject" => outer.subject.clone(),
                "From" => outer.from.clone(),
                "Date" => outer.date.clone(),
                "To" => (!outer.to.is_empty()).then(|| outer.to.join(", ")),
                "Cc" => (!outer.cc.is_empty()).then(|| outer.cc.join(", ")),
                _ => None,
            }
        };
        let differs = protected
            .iter()
            .filter(|(n, v)| {
                let o = outer_value(n);
                matches!(n.as_str(), "Subject" | "From" | "To" | "Cc" | "Date")
                    && o.as_deref().map(normalize) != Some(normalize(v))
            })
            .map(|(n, v)| (n.clone(), outer_value(n), v.clone()))
            .collect();
        let inner = email::read(bytes);
        inspection.email_inside = Some(EmailInside {
            protected_headers: protected,
            differs_from_outer: differs,
            parts: inner.parts,
        });
    }
    inspection.advice = advice(inspection);
}

fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `input` (its first line is enough) starts with a header field: an email.
pub fn is_email(input: &[u8]) -> bool {
    let first = input.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    !first.starts_with("-----BEGIN PGP")
        && first
            .split_once(':')
            .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()))
}

fn mark_cards(m: &mut openpgp::MessageFacts, cards: &CardKeys) {
    let Some(cards) = cards else {
        return;
    };
    m.cards_checked = true;
    let cards: Vec<(&String, Option<sequoia_openpgp::Fingerprint>)> = cards
        .iter()
        .map(|(ident, fpr)| (ident, fpr.parse().ok()))
        .collect();
    for r in &mut m.recipients {
        // The same rule as decrypting uses: a v4 or v6 key id, or a fingerprint.
        let handle: Option<sequoia_openpgp::KeyHandle> = r
            .fingerprint
            .as_deref()
            .or(r.key_id.as_deref())
            .and_then(|h| h.parse().ok());
        r.on_card = handle.and_then(|h| {
            cards
                .iter()
                .find(|(_, fp)| {
                    fp.as_ref()
                        .is_some_and(|fp| crate::card::pubkey::may_be_on_card(&h, fp.as_bytes()))
                })
                .map(|(ident, _)| (*ident).clone())
        });
    }
}

fn inside(r: &Report, len: u64) -> Inside {
    Inside {
        cipher: r.sym_algo.map(symmetric::name),
        aead: r.aead_algo.map(aead::aead_name),
        compression: r.compression.map(|c| match c {
            0 => "uncompressed".to_string(),
            1 => "ZIP".to_string(),
            2 => "ZLIB".to_string(),
            3 => "BZip2".to_string(),
            other => format!("algorithm {other}"),
        }),
        literal_format: r.literal.as_ref().map(|(f, _, _)| {
            match f {
                b't' => "text",
                b'u' => "utf-8",
                b'm' => "mime",
                _ => "binary",
            }
            .to_string()
        }),
        literal_filename: r
            .literal
            .as_ref()
            .map(|(_, _, n)| String::from_utf8_lossy(n).into_owned())
            .filter(|n| !n.is_empty()),
        literal_date: r
            .literal
            .as_ref()
            .filter(|(_, d, _)| *d != 0)
            .map(|(_, d, _)| crate::time::utc_minute(u64::from(*d))),
        signatures: r
            .signatures
            .iter()
            .map(|s| SignatureFacts {
                key_id: s.key_id.clone(),
                fingerprint: s.signer_fingerprint.clone(),
                verdict: match &s.verdict {
                    Verdict::Good => "good".into(),
                    Verdict::Bad => "bad".into(),
                    Verdict::NoCert => "no certificate to check it".into(),
                    Verdict::Unusable(why) => format!("not checkable: {why}"),
                },
            })
            .collect(),
        weak_cipher: r.weak_cipher.map(str::to_string),
        plaintext_length: len,
    }
}

/// What would have revealed less, from what was found.
fn advice(i: &Inspection) -> Vec<String> {
    let mut out = Vec::new();
    let messages: Vec<&openpgp::MessageFacts> = match (&i.message, &i.email) {
        (Some(m), _) => vec![m],
        (None, Some(e)) => e.encrypted.iter().collect(),
        _ => Vec::new(),
    };
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for m in &messages {
        if m.recipients.iter().any(|r| r.key_id.is_some()) {
            push(
                "The recipients' key ids are visible: hidden recipients (gpg --throw-keyids, \
                 or -R per recipient) would not say who can read it."
                    .into(),
            );
        }
        if m.armor_headers
            .iter()
            .any(|(k, _)| k == "Version" || k == "Comment")
        {
            push(
                "The sender's software named itself in the armor (Version:/Comment:): gpg \
                 --no-emit-version --no-comments leaves that out."
                    .into(),
            );
        }
        match m.container.as_ref().map(|c| c.kind.as_str()) {
            Some("SED") => push(
                "No integrity protection (SED): anyone on the way could have changed it; \
                 ask for a current OpenPGP program."
                    .into(),
            ),
            Some("SEIPDv1") => push(
                "SEIPD v1 checks integrity only at the end (SHA-1 MDC): SEIPD v2 (RFC 9580 \
                 AEAD) authenticates every chunk."
                    .into(),
            ),
            _ => {}
        }
        push(
            "The size gives the length of the (compressed) text to within a few bytes: \
             padding (RFC 9580 padding packets) would blur it."
                .into(),
        );
    }
    if let Some(e) = &i.email {
        let protected = i
            .email_inside
            .as_ref()
            .is_some_and(|inside| inside.protected_headers.iter().any(|(n, _)| n == "Subject"))
            && e.subject_placeholder;
        if e.subject.is_some() && !e.subject_placeholder {
            push(
                "The subject travels in the clear: header protection (RFC 9788) would put it \
                 inside and show \"...\" outside."
                    .into(),
            );
        } else if e.subject_placeholder && !protected && i.email_inside.is_none() {
            push("The subject outside is a placeholder: the real one is likely inside.".into());
        }
        if e.to.len() + e.cc.len() > 1 {
            push(format!(
                "All {} recipients in To/Cc are visible to the provider: Bcc, or one \
                 message per recipient, would hide who else got it.",
                e.to.len() + e.cc.len()
            ));
        }
        if let Some(ua) = &e.user_agent {
            push(format!(
                "The mail client named itself ({ua}): many clients can leave User-Agent out."
            ));
        }
        if let Some(first) = e.received.last() {
            if let Some(ip) = first.ips.first() {
                push(format!(
                    "The first Received: hop shows the sender's address {ip}: a submission \
                     server that drops it, or Tor/VPN, would not."
                ));
            }
        }
        if let Some(tz) = &e.timezone {
            if tz != "+0000" && tz != "-0000" && tz != "UTC" && tz != "GMT" {
                push(format!(
                    "The Date shows the sender's time zone ({tz}): clients can send it in UTC."
                ));
            }
        }
        if e.clear_parts > 0 && !e.encrypted.is_empty() {
            push(format!(
                "{} part(s) travel outside the encryption: attach files inside the \
                 encrypted message (PGP/MIME) instead.",
                e.clear_parts
            ));
        }
        if e.parts.iter().any(|p| p.protection == "inline-pgp") {
            push(
                "Inline PGP leaves the message's structure and attachments readable: \
                 PGP/MIME encrypts the whole body."
                    .into(),
            );
        }
        if e.encrypted.is_empty() {
            push("Nothing in this email is encrypted.".into());
        }
    }
    if let Some(inside) = &i.inside {
        for piece in inside {
            if let Some(weak) = &piece.weak_cipher {
                push(format!("Encrypted with an old cipher ({weak})."));
            }
            if piece.literal_filename.is_some() {
                push(
                    "The encrypted data carries a file name; only the card holder sees it, \
                     but it is kept with the text."
                        .into(),
                );
            }
        }
    }
    out
}

/// The report for people: three sections, 80 columns.
pub fn render(i: &Inspection) -> String {
    let mut out = String::new();
    let mut line = |indent: usize, text: &str| wrap(&mut out, indent, text);
    line(0, "Anyone holding this message can see:");
    if let Some(m) = &i.message {
        message_lines(&mut line, m, "");
    }
    if let Some(e) = &i.email {
        email_lines(&mut line, e);
    }
    if let Some(inside) = &i.inside {
        line(0, "");
        line(0, "Only the card holder can see:");
        for (n, piece) in inside.iter().enumerate() {
            let which = if inside.len() > 1 {
                format!("Encrypted part {}: ", n + 1)
            } else {
                String::new()
            };
            let cipher = match (&piece.cipher, &piece.aead) {
                (Some(c), Some(a)) => format!("{c} with {a}"),
                (Some(c), None) => c.clone(),
                _ => "unknown".into(),
            };
            line(
                2,
                &format!(
                    "- {which}cipher {cipher}; {} bytes of plaintext",
                    piece.plaintext_length
                ),
            );
            if let Some(c) = &piece.compression {
                line(4, &format!("compressed with {c}"));
            }
            if let Some(f) = &piece.literal_format {
                let name = piece
                    .literal_filename
                    .as_deref()
                    .map(|n| format!(", file name \"{n}\""))
                    .unwrap_or_else(|| ", no file name".into());
                let date = piece
                    .literal_date
                    .as_deref()
                    .map(|d| format!(", dated {d}"))
                    .unwrap_or_default();
                line(4, &format!("literal data: {f}{name}{date}"));
            }
            for s in &piece.signatures {
                line(
                    4,
                    &format!(
                        "signed by key {}{}: {}",
                        s.key_id,
                        s.fingerprint
                            .as_deref()
                            .map(|f| format!(" ({f})"))
                            .unwrap_or_default(),
                        s.verdict
                    ),
                );
            }
            if piece.signatures.is_empty() {
                line(4, "not signed");
            }
        }
        if let Some(e) = &i.email_inside {
            if e.protected_headers.is_empty() {
                line(2, "- No protected headers inside.");
            } else {
                line(2, "- Protected headers inside:");
                for (n, v) in &e.protected_headers {
                    line(4, &format!("{n}: {v}"));
                }
            }
            for (n, outer, inner) in &e.differs_from_outer {
                line(
                    2,
                    &format!(
                        "- {n} differs: outside \"{}\", inside \"{inner}\"",
                        outer.as_deref().unwrap_or("(none)")
                    ),
                );
            }
            line(2, "- Structure inside:");
            for p in &e.parts {
                line(4, &part_text(p));
            }
        }
    }
    line(0, "");
    line(0, "What would have revealed less:");
    if i.advice.is_empty() {
        line(2, "- Nothing found.");
    }
    for a in &i.advice {
        line(2, &format!("- {a}"));
    }
    out
}

fn message_lines(line: &mut impl FnMut(usize, &str), m: &openpgp::MessageFacts, prefix: &str) {
    for r in &m.recipients {
        let who = match (&r.key_id, &r.fingerprint) {
            (_, Some(fpr)) => format!("key {fpr}"),
            (Some(id), None) => format!("key id {id}"),
            (None, _) => "a hidden recipient (wildcard key id)".into(),
        };
        let card = match (&r.on_card, m.cards_checked) {
            (Some(ident), _) => format!("; your card {ident} holds it"),
            (None, true) if r.key_id.is_some() => "; not on a present card".into(),
            _ => String::new(),
        };
        line(
            2,
            &format!("- {prefix}Encrypted to {who} ({}){card}", r.algorithm),
        );
    }
    if m.passwords > 0 {
        line(
            2,
            &format!(
                "- {prefix}{} password-encrypted session key(s)",
                m.passwords
            ),
        );
    }
    if let Some(c) = &m.container {
        let mut what = format!("- {prefix}Container {}: integrity {}", c.kind, c.integrity);
        if let (Some(cipher), Some(aead)) = (&c.cipher, &c.aead) {
            what.push_str(&format!(", {cipher} with {aead}"));
        }
        if let Some(chunk) = c.chunk_size {
            what.push_str(&format!(", chunks of {chunk} bytes"));
        }
        line(2, &what);
        if c.kind == "SEIPDv1" {
            line(
                4,
                "the cipher is inside the encrypted session key, not visible",
            );
        }
        if c.partial_framing {
            line(4, "sent in partial-length chunks: written as a stream");
        }
    }
    for (k, v) in &m.armor_headers {
        line(2, &format!("- {prefix}Armor header {k}: {v}"));
    }
    line(
        2,
        &format!(
            "- {prefix}Size {} bytes ({}); the plaintext is at most {} bytes (before \
             decompression)",
            m.size,
            if m.armored { "armored" } else { "binary" },
            m.plaintext_at_most.unwrap_or(0)
        ),
    );
    if !m.cards_checked {
        line(4, "(no card was checked: pcscd was not reachable)");
    }
}

fn email_lines(line: &mut impl FnMut(usize, &str), e: &email::EmailFacts) {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    line(
        2,
        &format!(
            "- Subject: {}{}",
            show(&e.subject),
            if e.subject_placeholder {
                " (a placeholder)"
            } else {
                " (not protected)"
            }
        ),
    );
    line(2, &format!("- From: {}", show(&e.from)));
    line(
        2,
        &format!("- To: {} recipient(s): {}", e.to.len(), e.to.join(", ")),
    );
    if !e.cc.is_empty() {
        line(
            2,
            &format!("- Cc: {} recipient(s): {}", e.cc.len(), e.cc.join(", ")),
        );
    }
    line(
        2,
        &format!(
            "- Date: {}{}",
            show(&e.date),
            e.timezone
                .as_deref()
                .map(|t| format!(" (time zone {t})"))
                .unwrap_or_default()
        ),
    );
    if let Some(d) = &e.message_id_domain {
        line(2, &format!("- Message-ID domain: {d}"));
    }
    for (n, hop) in e.received.iter().rev().enumerate() {
        let who = if n == 0 { " (the sender's first)" } else { "" };
        line(
            2,
            &format!(
                "- Received hop {}{who}: from {} by {}{}",
                n + 1,
                hop.from.as_deref().unwrap_or("?"),
                hop.by.as_deref().unwrap_or("?"),
                if hop.ips.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", hop.ips.join(", "))
                }
            ),
        );
    }
    if let Some(ua) = &e.user_agent {
        line(2, &format!("- Mail client: {ua}"));
    }
    if e.autocrypt {
        line(2, "- An Autocrypt header (the sender's public key)");
    }
    for (k, v) in &e.revealing {
        line(2, &format!("- {k}: {v}"));
    }
    line(2, "- Structure:");
    for p in &e.parts {
        line(4, &part_text(p));
    }
    for (n, m) in e.encrypted.iter().enumerate() {
        message_lines(line, m, &format!("Encrypted part {}: ", n + 1));
    }
}

fn part_text(p: &email::Part) -> String {
    let name = p
        .filename
        .as_deref()
        .map(|f| format!(" \"{f}\""))
        .unwrap_or_default();
    let protection = match p.protection.as_str() {
        "pgp-mime" => "encrypted (PGP/MIME)",
        "inline-pgp" => "inline PGP blocks in readable text",
        _ if p.content_type.starts_with("multipart/") => "its parts follow",
        _ if p.content_type == "application/pgp-encrypted" => "the PGP/MIME control part",
        _ => "readable by anyone",
    };
    format!(
        "{} {}{name}, {} bytes: {protection}",
        p.path, p.content_type, p.size
    )
}

/// Appends `text` wrapped at 80 columns, continuation lines indented two more.
fn wrap(out: &mut String, indent: usize, text: &str) {
    let width = 80;
    let mut current = " ".repeat(indent);
    for word in text.split(' ') {
        let room = current.trim_end().len() + 1 + word.len();
        if room > width && !current.trim().is_empty() {
            out.push_str(current.trim_end());
            out.push('\n');
            current = " ".repeat(indent + 2);
        }
        if !current.trim().is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push_str(current.trim_end());
    out.push('\n');
}
