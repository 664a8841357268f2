//! The report for people: what anyone holding the message sees, what only the card holder
//! sees, and what would have revealed less, wrapped at 80 columns.

use super::{email, openpgp, Inspection};

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
pub(crate) fn wrap(out: &mut String, indent: usize, text: &str) {
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
