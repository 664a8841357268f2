//! What the outside of an email tells: the header fields that travel in the clear, the path
//! it took, the sender's software, and which parts are encrypted and which are not.

use serde::Serialize;

use super::openpgp::{self, MessageFacts};
use crate::mail::mime::{ContentType, Entity, Multipart};

/// Nesting deeper than this is not walked (no real mail nests so deep).
const MAX_DEPTH: usize = 24;

/// One `Received:` hop.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub from: Option<String>,
    pub by: Option<String>,
    /// IP addresses named in the field (in brackets or parentheses).
    pub ips: Vec<String>,
}

/// A MIME part, as anyone sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// Position in the tree: "1", "1.2", ...
    pub path: String,
    pub content_type: String,
    pub filename: Option<String>,
    pub size: usize,
    /// "pgp-mime" (the encrypted payload), "inline-pgp" (armored blocks in text), or
    /// "clear" (readable as it is).
    pub protection: String,
}

/// Everything the outside of an email tells.
#[derive(Debug, Clone, Serialize)]
pub struct EmailFacts {
    pub subject: Option<String>,
    /// The subject is a placeholder ("...", "[...]", empty): the real one is likely inside.
    pub subject_placeholder: bool,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub date: Option<String>,
    /// The sender's UTC offset, from the Date field.
    pub timezone: Option<String>,
    pub message_id_domain: Option<String>,
    /// Newest first, as in the message; the last one is the sender's first hop.
    pub received: Vec<Hop>,
    pub user_agent: Option<String>,
    pub autocrypt: bool,
    /// Other fields that name the sender's machine, network or software.
    pub revealing: Vec<(String, String)>,
    pub parts: Vec<Part>,
    /// The OpenPGP messages found (PGP/MIME payloads and inline blocks).
    pub encrypted: Vec<MessageFacts>,
    /// Parts readable without the key, besides the PGP/MIME control part.
    pub clear_parts: usize,
    /// Signed outside any encryption (multipart/signed, or a cleartext-signed text).
    pub signed: bool,
    /// Encrypted parts whose OpenPGP packets could not be read: (part, why).
    pub unreadable: Vec<(String, String)>,
}

/// Fields that name the sender's machine, address, network or software.
const REVEALING: &[&str] = &[
    "X-Originating-IP",
    "X-Sender-IP",
    "X-Forwarded-For",
    "X-Mailer",
    "X-Client-IP",
    "X-Remote-Addr",
    "X-Authenticated-Sender",
    "X-Sender",
    "X-Originating-Email",
    "Sender",
    "Reply-To",
    "Return-Path",
    "In-Reply-To",
    "References",
    "List-Id",
    "Organization",
    "OpenPGP",
];

/// Reads the outside of the email `bytes`.
pub fn read(bytes: &[u8]) -> EmailFacts {
    let top = Entity::parse(bytes);
    let value = |name: &str| top.field(name).map(|f| f.value().trim().to_string());
    let all = |name: &str| -> Vec<String> {
        top.fields
            .iter()
            .filter(|f| f.is(name))
            .flat_map(|f| split_addresses(&f.value()))
            .collect()
    };
    let subject = value("Subject");
    let date = value("Date");
    let mut facts = EmailFacts {
        subject_placeholder: subject
            .as_deref()
            .is_some_and(|s| matches!(s.trim(), "" | "..." | "[...]" | "Encrypted Message" | "…")),
        subject,
        from: value("From"),
        to: all("To"),
        cc: all("Cc"),
        timezone: date.as_deref().and_then(timezone),
        date,
        message_id_domain: value("Message-ID").and_then(|m| {
            let inner = m
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string();
            inner.rsplit_once('@').map(|(_, d)| d.to_string())
        }),
        received: top
            .fields
            .iter()
            .filter(|f| f.is("Received"))
            .map(|f| hop(&f.value()))
            .collect(),
        user_agent: value("User-Agent").or_else(|| value("X-Mailer")),
        autocrypt: top.field("Autocrypt").is_some(),
        revealing: REVEALING
            .iter()
            .filter_map(|name| Some((name.to_string(), value(name)?)))
            .collect(),
        parts: Vec::new(),
        encrypted: Vec::new(),
        clear_parts: 0,
        signed: false,
        unreadable: Vec::new(),
    };
    walk(&top, "1", 0, &mut facts);
    facts.clear_parts = facts
        .parts
        .iter()
        .filter(|p| {
            p.protection == "clear"
                && !p.content_type.starts_with("multipart/")
                && p.content_type != "application/pgp-encrypted"
        })
        .count();
    facts
}

fn walk(e: &Entity<'_>, path: &str, depth: usize, facts: &mut EmailFacts) {
    if depth > MAX_DEPTH {
        return;
    }
    let ct = e.content_type();
    let mut part = Part {
        path: path.to_string(),
        content_type: ct.mime.clone(),
        filename: filename(e, &ct),
        size: e.body.len(),
        protection: "clear".into(),
    };
    if ct.mime.starts_with("multipart/") {
        facts.signed |= ct.is("multipart/signed");
        facts.parts.push(part);
        let Some(boundary) = ct.param("boundary") else {
            return;
        };
        let Some(multipart) = Multipart::split(e.body, boundary) else {
            return;
        };
        let encrypted = ct.is("multipart/encrypted");
        for (i, body) in multipart.parts.iter().enumerate() {
            let child = Entity::parse(body);
            let child_path = format!("{path}.{}", i + 1);
            if encrypted && i == 1 {
                // The PGP/MIME payload.
                let payload = child.decoded_body();
                let ct = child.content_type();
                facts.parts.push(Part {
                    path: child_path,
                    content_type: ct.mime.clone(),
                    filename: filename(&child, &ct),
                    size: payload.len(),
                    protection: "pgp-mime".into(),
                });
                let at = facts
                    .parts
                    .last()
                    .map(|p| p.path.clone())
                    .unwrap_or_default();
                facts.add_message(openpgp::read(&payload), at);
            } else {
                walk(&child, &child_path, depth + 1, facts);
            }
        }
        return;
    }
    let body = e.decoded_body();
    if ct.mime.starts_with("text/") || ct.is("application/pgp") {
        facts.signed |= find(&body, b"-----BEGIN PGP SIGNED MESSAGE-----").is_some();
        let blocks = armored_blocks(&body);
        if !blocks.is_empty() {
            part.protection = "inline-pgp".into();
            for block in blocks {
                facts.add_message(openpgp::read(block), path.to_string());
            }
        }
    } else if ct.is("application/pgp-encrypted") || ct.is("application/octet-stream") {
        if let Ok(m) = openpgp::read(&body) {
            part.protection = "pgp-mime".into();
            facts.encrypted.push(m);
        }
    }
    facts.parts.push(part);
}

impl EmailFacts {
    /// Keeps an OpenPGP message found in part `at`, or why it could not be read.
    fn add_message(&mut self, read: crate::error::Result<MessageFacts>, at: String) {
        match read {
            Ok(m) => self.encrypted.push(m),
            Err(e) => self.unreadable.push((at, e.to_string())),
        }
    }
}

fn filename(e: &Entity<'_>, ct: &ContentType) -> Option<String> {
    let disposition = e
        .field("Content-Disposition")
        .map(|f| ContentType::parse(&format!("x/x; {}", after_semicolon(&f.value()))));
    disposition
        .as_ref()
        .and_then(|d| d.param("filename").map(str::to_string))
        .or_else(|| ct.param("name").map(str::to_string))
}

fn after_semicolon(value: &str) -> &str {
    value.split_once(';').map_or("", |(_, rest)| rest)
}

/// The armored OpenPGP message blocks in a text.
fn armored_blocks(body: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
    const END: &[u8] = b"-----END PGP MESSAGE-----";
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = find(&body[at..], BEGIN).map(|i| at + i) {
        let Some(end) = find(&body[start..], END).map(|i| start + i + END.len()) else {
            break;
        };
        out.push(&body[start..end]);
        at = end;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Addresses in an address-list field, split at commas outside quotes and angle brackets.
pub fn split_addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle) = (false, false);
    for ch in value.chars() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// "+0200" from "Mon, 23 Nov 2026 10:00:00 +0200".
fn timezone(date: &str) -> Option<String> {
    let last = date.split_whitespace().last()?;
    let offset = last.starts_with(['+', '-']) && last.len() == 5;
    (offset || last.chars().all(|c| c.is_ascii_alphabetic())).then(|| last.to_string())
}

/// The hosts and addresses one `Received:` field names.
fn hop(value: &str) -> Hop {
    let words: Vec<&str> = value.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(key))
            .and_then(|i| words.get(i + 1))
            .map(|w| {
                w.trim_matches(|c| c == ';' || c == '(' || c == ')')
                    .to_string()
            })
    };
    let mut ips = Vec::new();
    for chunk in value.split(['[', ']', '(', ')', ' ', ';']) {
        let candidate = chunk.trim().trim_start_matches("IPv6:");
        if candidate.parse::<std::net::IpAddr>().is_ok() && !ips.iter().any(|i| i == candidate) {
            ips.push(candidate.to_string());
        }
    }
    Hop {
        from: after("from"),
        by: after("by"),
        ips,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_fields_give_hosts_and_addresses() {
        let h = hop(
            "from laptop.example.org (dsl-5.example.net [198.51.100.7]) by mx.example.com \
             (Postfix) with ESMTPS id 4B; Mon, 23 Nov 2026 10:00:02 +0000",
        );
        assert_eq!(h.from.as_deref(), Some("laptop.example.org"));
        assert_eq!(h.by.as_deref(), Some("mx.example.com"));
        assert_eq!(h.ips, ["198.51.100.7"]);
        let v6 = hop("from [IPv6:2001:db8::1] by mx.example.com");
        assert_eq!(v6.ips, ["2001:db8::1"]);
    }

    #[test]
    fn addresses_and_timezones() {
        assert_eq!(
            split_addresses("\"Bob, B.\" <bob@example.org>, carol@example.org"),
            ["\"Bob, B.\" <bob@example.org>", "carol@example.org"]
        );
        assert_eq!(
            timezone("Mon, 23 Nov 2026 10:00:00 +0200").as_deref(),
            Some("+0200")
        );
    }
}
