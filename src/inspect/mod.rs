//! `cardecrypt inspect`: what a message gives away to anyone who holds it, what only the card
//! opens, and what would have revealed less. The outside needs no card, PIN or pcscd; with
//! `--decrypt` the card decrypts as usual (same PIN and authentication rules), and the
//! inside is described, never its body text.
//! - [`openpgp`]: the outside of an OpenPGP message
//! - [`email`]: the outside of an email
//! - [`leaks`]: what of it gives the sender or recipients away (the one place that decides)
//! - [`mailbox`]: the same over a whole maildir or mbox
//! - `render`: the report for people

pub mod email;
pub mod leaks;
pub mod mailbox;
pub mod openpgp;
mod render;

pub use render::render;

use serde::Serialize;

use leaks::Leak;

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

/// What would have revealed less, from what was found (the rules are in [`leaks`]).
fn advice(i: &Inspection) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    let found = match (&i.message, &i.email) {
        (Some(m), _) => leaks::of_message(m),
        (None, Some(e)) => leaks::of_email(e),
        _ => Vec::new(),
    };
    let (from_messages, from_email): (Vec<_>, Vec<_>) = found.iter().partition(|l| {
        matches!(
            l,
            Leak::RecipientKeyIds | Leak::ArmorSoftware(_) | Leak::NoIntegrity | Leak::SeipdV1
        )
    });
    from_messages
        .iter()
        .filter_map(|l| l.advice())
        .for_each(&mut push);
    let any_message =
        i.message.is_some() || i.email.as_ref().is_some_and(|e| !e.encrypted.is_empty());
    if any_message {
        push(
            "The size gives the length of the (compressed) text to within a few bytes: \
             padding (RFC 9580 padding packets) would blur it."
                .into(),
        );
    }
    from_email
        .iter()
        .filter_map(|l| l.advice())
        .for_each(&mut push);
    if let Some(e) = &i.email {
        if e.subject_placeholder && i.email_inside.is_none() {
            push("The subject outside is a placeholder: the real one is likely inside.".into());
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
