//! Whole messages: find what is encrypted (PGP/MIME, the "Exchange-mangled" PGP/MIME
//! layout, inline PGP blocks), decrypt it, restore protected headers, and give back a
//! message any MUA or indexer reads. What is not decrypted stays byte for byte as it was.
//!
//! Every encrypted piece must decrypt: one failure fails the whole message, so no partly
//! decrypted message is ever written.

use std::borrow::Cow;

use sequoia_openpgp::Cert;
use zeroize::Zeroizing;

use super::mime::{self, ContentType, Entity, Field, Multipart};
use crate::{
    decrypt::Report,
    error::{Error, Result},
    verify::{self, SignatureCheck},
};

/// Nesting deeper than this is left alone (it is not a real mail, it is an attack).
const MAX_DEPTH: usize = 24;

const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const END: &[u8] = b"-----END PGP MESSAGE-----";

/// Decrypts one OpenPGP message (armored or binary) and reports on it.
pub type DecryptFn<'d> = dyn FnMut(&[u8]) -> Result<(Zeroizing<Vec<u8>>, Report)> + 'd;

/// What became of a message.
#[derive(Default)]
pub struct Outcome {
    /// The decrypted message; equal to the input when nothing was encrypted.
    pub message: Zeroizing<Vec<u8>>,
    /// One report per encrypted piece, in message order.
    pub reports: Vec<Report>,
    /// The protected header fields replaced the outer ones.
    pub protected_headers: bool,
    /// Checks of PGP/MIME signatures (`multipart/signed`) found inside encrypted parts.
    pub mime_signatures: Vec<SignatureCheck>,
}

impl Outcome {
    pub fn encrypted(&self) -> bool {
        !self.reports.is_empty()
    }
}

/// Decrypts every encrypted piece of the RFC 5322 message `input`.
pub fn decrypt_message(
    input: &[u8],
    decrypt: &mut DecryptFn<'_>,
    signer_certs: &[Cert],
) -> Result<Outcome> {
    let mut walker = Walker {
        decrypt,
        signer_certs,
        outcome: Outcome::default(),
    };
    let top = Entity::parse(input);
    let rewritten = walker.rewrite(&top, true, false, 0)?;
    let mut outcome = walker.outcome;
    outcome.message = Zeroizing::new(rewritten.unwrap_or_else(|| input.to_vec()));
    Ok(outcome)
}

struct Walker<'w, 'd> {
    decrypt: &'w mut DecryptFn<'d>,
    signer_certs: &'w [Cert],
    outcome: Outcome,
}

impl Walker<'_, '_> {
    /// The entity's new bytes (header and body), or `None` when nothing in it changed.
    fn rewrite(
        &mut self,
        e: &Entity<'_>,
        top: bool,
        inside_encrypted: bool,
        depth: usize,
    ) -> Result<Option<Vec<u8>>> {
        if depth > MAX_DEPTH {
            return Ok(None);
        }
        let ct = e.content_type();
        if let Some(armored) = pgp_mime_payload(e, &ct)? {
            let (payload, report) = (self.decrypt)(&armored)?;
            self.outcome.reports.push(report);
            let payload = with_newlines(&payload, e.newline());
            let inner_bytes =
                match self.rewrite(&Entity::parse(&payload), false, true, depth + 1)? {
                    Some(bytes) => Zeroizing::new(bytes),
                    None => payload,
                };
            if !top {
                return Ok(Some(inner_bytes.to_vec()));
            }
            return Ok(Some(self.merge_headers(
                e,
                &Entity::parse(&inner_bytes),
                depth,
            )));
        }
        if ct.mime.starts_with("multipart/") {
            if ct.is("multipart/signed") {
                // Changing anything inside would break the signature: check it, keep it.
                if inside_encrypted {
                    self.check_signed(e, &ct);
                }
                return Ok(None);
            }
            let Some(boundary) = ct.param("boundary") else {
                return Ok(None);
            };
            let Some(multipart) = Multipart::split(e.body, boundary) else {
                return Ok(None);
            };
            let mut parts: Vec<Cow<'_, [u8]>> = Vec::new();
            let mut changed = false;
            for part in &multipart.parts {
                let entity = Entity::parse(part);
                match self.rewrite(&entity, false, inside_encrypted, depth + 1)? {
                    Some(bytes) => {
                        changed = true;
                        parts.push(Cow::Owned(bytes));
                    }
                    None => parts.push(Cow::Borrowed(part)),
                }
            }
            if !changed {
                return Ok(None);
            }
            let keep = vec![true; parts.len()];
            return Ok(Some(reassemble(e, &multipart, &parts, &keep)));
        }
        if is_inline_candidate(e, &ct) {
            return self.decrypt_inline(e, &ct);
        }
        Ok(None)
    }

    /// Text with `-----BEGIN PGP MESSAGE-----` blocks: each block becomes its plaintext.
    fn decrypt_inline(&mut self, e: &Entity<'_>, ct: &ContentType) -> Result<Option<Vec<u8>>> {
        let body = e.decoded_body();
        let blocks = find_blocks(&body);
        if blocks.is_empty() {
            return Ok(None);
        }
        let newline = e.newline();
        let charset = ct.param("charset").unwrap_or("us-ascii").to_string();
        // Build the new text as UTF-8 when both sides can be read as text; otherwise splice
        // bytes and leave the charset as it was.
        let mut text: Option<String> = Some(String::new());
        let mut bytes: Vec<u8> = Vec::new();
        let mut at = 0;
        for (start, end) in blocks {
            let before = &body[at..start];
            let (plain, report) = (self.decrypt)(&body[start..end])?;
            self.outcome.reports.push(report);
            let plain = with_newlines(&plain, newline);
            let plain_charset = armor_charset(&body[start..end]).unwrap_or("utf-8".into());
            text = match (text, mime::to_text(before, &charset)) {
                (Some(mut t), Some(b)) => mime::to_text(&plain, &plain_charset).map(|p| {
                    t.push_str(&b);
                    t.push_str(&p);
                    t
                }),
                _ => None,
            };
            bytes.extend_from_slice(before);
            bytes.extend_from_slice(&plain);
            at = end;
        }
        let rest = &body[at..];
        bytes.extend_from_slice(rest);
        let mut new_ct = ct.clone();
        let new_body = match text.and_then(|mut t| {
            t.push_str(&mime::to_text(rest, &charset)?);
            Some(t)
        }) {
            Some(t) => {
                new_ct.set_param("charset", "utf-8");
                t.into_bytes()
            }
            None => bytes,
        };
        if new_ct.mime == "application/pgp" {
            new_ct.mime = "text/plain".into();
            new_ct.remove_param("x-action");
            new_ct.remove_param("format");
        }
        Ok(Some(with_body(e, &new_ct, &new_body)))
    }

    /// The top-level result of a PGP/MIME message: the outer header (protected fields
    /// restored when the payload carries them) with the payload's content fields and body.
    fn merge_headers(&mut self, outer: &Entity<'_>, inner: &Entity<'_>, depth: usize) -> Vec<u8> {
        let ct = inner.content_type();
        let protected = ct.param("hp") == Some("cipher")
            || ct
                .param("protected-headers")
                .is_some_and(|v| v.eq_ignore_ascii_case("v1"));
        let inner_fields: Vec<&Field<'_>> = if protected {
            inner
                .fields
                .iter()
                .filter(|f| !f.is_content() && !f.is("HP-Outer"))
                .collect()
        } else {
            Vec::new()
        };
        self.outcome.protected_headers |= !inner_fields.is_empty();
        let newline = outer.newline();
        let mut out = Vec::new();
        let mut done: Vec<String> = Vec::new();
        let emit_protected = |out: &mut Vec<u8>, name: &str, done: &mut Vec<String>| {
            let lower = name.to_ascii_lowercase();
            if !done.contains(&lower) {
                for f in inner_fields.iter().filter(|f| f.is(name)) {
                    out.extend_from_slice(f.raw);
                }
                done.push(lower);
            }
        };
        for f in &outer.fields {
            if f.is_content() {
                continue;
            }
            if inner_fields.iter().any(|i| i.is(f.name)) {
                emit_protected(&mut out, f.name, &mut done);
            } else {
                out.extend_from_slice(f.raw);
            }
        }
        for f in &inner_fields {
            emit_protected(&mut out, f.name, &mut done);
        }
        match outer.field("MIME-Version") {
            Some(f) => out.extend_from_slice(f.raw),
            None => {
                out.extend_from_slice(b"MIME-Version: 1.0");
                out.extend_from_slice(newline);
            }
        }
        // The payload root gives the content fields and the body; with legacy display
        // stripped, the stripped root (its content fields possibly rewritten).
        let stripped = protected
            .then(|| strip_legacy_display(inner, depth))
            .flatten();
        let parsed;
        let root = match &stripped {
            Some(bytes) => {
                parsed = Entity::parse(bytes);
                &parsed
            }
            None => inner,
        };
        for f in root
            .fields
            .iter()
            .filter(|f| f.is_content() && !f.is("MIME-Version"))
        {
            out.extend_from_slice(f.raw);
        }
        out.extend_from_slice(if root.separator.is_empty() {
            newline
        } else {
            root.separator
        });
        out.extend_from_slice(root.body);
        out
    }

    fn check_signed(&mut self, e: &Entity<'_>, ct: &ContentType) {
        let is_pgp = ct
            .param("protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-signature"));
        let Some(boundary) = ct.param("boundary") else {
            return;
        };
        let (true, Some(multipart)) = (is_pgp, Multipart::split(e.body, boundary)) else {
            return;
        };
        if multipart.parts.len() != 2 {
            return;
        }
        let signed = with_newlines(multipart.parts[0], b"\r\n");
        let signature = Entity::parse(multipart.parts[1]).decoded_body();
        self.outcome.mime_signatures.extend(verify::detached(
            &signed,
            &signature,
            self.signer_certs,
        ));
    }
}

/// The armored OpenPGP message of a PGP/MIME entity (RFC 3156, or the layout MS Exchange
/// makes of it), or `None` if the entity is not one.
fn pgp_mime_payload(e: &Entity<'_>, ct: &ContentType) -> Result<Option<Vec<u8>>> {
    let encrypted = ct.is("multipart/encrypted")
        && ct
            .param("protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-encrypted"));
    let mixed = ct.is("multipart/mixed");
    if !encrypted && !mixed {
        return Ok(None);
    }
    let Some(boundary) = ct.param("boundary") else {
        return if encrypted {
            Err(malformed("the multipart/encrypted part has no boundary"))
        } else {
            Ok(None)
        };
    };
    let Some(multipart) = Multipart::split(e.body, boundary) else {
        return if encrypted {
            Err(malformed("the multipart/encrypted part is cut off"))
        } else {
            Ok(None)
        };
    };
    let parts: Vec<Entity<'_>> = multipart.parts.iter().map(|p| Entity::parse(p)).collect();
    let types: Vec<ContentType> = parts.iter().map(Entity::content_type).collect();
    let octet = |i: usize| types[i].is("application/octet-stream");
    let control = |i: usize| types[i].is("application/pgp-encrypted");
    if encrypted {
        return match (0..parts.len()).find(|&i| octet(i)) {
            Some(i) => Ok(Some(parts[i].decoded_body())),
            None => Err(malformed(
                "the multipart/encrypted part has no application/octet-stream part",
            )),
        };
    }
    // Exchange: multipart/mixed { empty text/plain, application/pgp-encrypted, octet-stream }.
    let mangled = parts.len() == 3
        && types[0].is("text/plain")
        && parts[0].decoded_body().iter().all(u8::is_ascii_whitespace)
        && control(1)
        && octet(2);
    Ok(mangled.then(|| parts[2].decoded_body()))
}

fn malformed(what: &str) -> Error {
    Error::BadMessage(format!("malformed PGP/MIME message: {what}"))
}

/// Text parts that are read, not attached files, may hold inline PGP.
fn is_inline_candidate(e: &Entity<'_>, ct: &ContentType) -> bool {
    let attachment = e
        .field("Content-Disposition")
        .is_some_and(|f| f.value().to_ascii_lowercase().starts_with("attachment"));
    !attachment && (ct.is("text/plain") || ct.is("application/pgp"))
}

/// Byte ranges of whole armored message blocks (BEGIN line to the end of the END line).
fn find_blocks(body: &[u8]) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut pos = 0;
    let mut start = None;
    while pos < body.len() {
        let end = mime::line_end(body, pos);
        let line = body[pos..end].trim_ascii_end();
        if line == BEGIN {
            start = Some(pos);
        } else if line == END {
            if let Some(s) = start.take() {
                blocks.push((s, end));
            }
        }
        pos = end;
    }
    blocks
}

/// The `Charset:` armor header of an armored block, if any.
fn armor_charset(block: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(block);
    text.lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| v.trim().to_string())
        })
}

/// `bytes` with every line ending turned into `newline`.
fn with_newlines(bytes: &[u8], newline: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(newline);
                i += 2;
            }
            b'\n' => {
                out.extend_from_slice(newline);
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The entity with a new Content-Type and a new, unencoded body.
fn with_body(e: &Entity<'_>, ct: &ContentType, body: &[u8]) -> Vec<u8> {
    let newline = e.newline();
    let mut out = Vec::new();
    let mut placed = false;
    for f in &e.fields {
        if f.is("Content-Transfer-Encoding") {
            continue;
        }
        if f.is("Content-Type") {
            if !placed {
                out.extend(ct.to_field(newline));
                placed = true;
            }
            continue;
        }
        out.extend_from_slice(f.raw);
    }
    if !placed {
        out.extend(ct.to_field(newline));
    }
    let encoding = if body.is_ascii() { "7bit" } else { "8bit" };
    out.extend_from_slice(format!("Content-Transfer-Encoding: {encoding}").as_bytes());
    out.extend_from_slice(newline);
    out.extend_from_slice(newline);
    out.extend_from_slice(body);
    out
}

/// A multipart entity with new part bytes, leaving out parts whose `keep` is false.
fn reassemble(
    e: &Entity<'_>,
    multipart: &Multipart<'_>,
    parts: &[Cow<'_, [u8]>],
    keep: &[bool],
) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &e.fields {
        out.extend_from_slice(f.raw);
    }
    out.extend_from_slice(e.separator);
    out.extend_from_slice(multipart.preamble);
    let mut first = true;
    for (i, part) in parts.iter().enumerate() {
        if keep[i] {
            // The first delimiter may lack the line ending before it; keep that form.
            let delimiter = if first { 0 } else { i };
            out.extend_from_slice(multipart.delimiters[delimiter]);
            out.extend_from_slice(part);
            first = false;
        }
    }
    out.extend_from_slice(multipart.delimiters.last().expect("a closing delimiter"));
    out.extend_from_slice(multipart.epilogue);
    out
}

/// Removes what was added only for readers unaware of header protection: RFC 9788
/// legacy-display elements (`hp-legacy-display="1"` text parts) and the older
/// `text/rfc822-headers; protected-headers="v1"` part. `None` when there was none.
fn strip_legacy_display(e: &Entity<'_>, depth: usize) -> Option<Vec<u8>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let ct = e.content_type();
    if ct.param("hp-legacy-display") == Some("1") {
        let body = e.decoded_body();
        let stripped = if ct.is("text/plain") {
            strip_plain_legacy(&body)
        } else if ct.is("text/html") {
            strip_html_legacy(&body)
        } else {
            None
        }?;
        let mut new_ct = ct.clone();
        new_ct.remove_param("hp-legacy-display");
        return Some(with_body(e, &new_ct, &stripped));
    }
    if !ct.mime.starts_with("multipart/") || ct.is("multipart/signed") {
        return None;
    }
    let multipart = Multipart::split(e.body, ct.param("boundary")?)?;
    let mut parts: Vec<Cow<'_, [u8]>> = Vec::new();
    let mut keep = Vec::new();
    let mut changed = false;
    for part in &multipart.parts {
        let entity = Entity::parse(part);
        let pct = entity.content_type();
        let legacy_part = pct.is("text/rfc822-headers")
            && pct
                .param("protected-headers")
                .is_some_and(|v| v.eq_ignore_ascii_case("v1"));
        keep.push(!legacy_part);
        changed |= legacy_part;
        match strip_legacy_display(&entity, depth + 1) {
            Some(bytes) => {
                changed = true;
                parts.push(Cow::Owned(bytes));
            }
            None => parts.push(Cow::Borrowed(part)),
        }
    }
    if !keep.iter().any(|k| *k) {
        return None;
    }
    changed.then(|| reassemble(e, &multipart, &parts, &keep))
}

/// A text/plain legacy-display element is the lines up to the first empty line.
fn strip_plain_legacy(body: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0;
    while pos < body.len() {
        let end = mime::line_end(body, pos);
        if body[pos..end].trim_ascii().is_empty() {
            return Some(body[end..].to_vec());
        }
        pos = end;
    }
    None
}

/// A text/html legacy-display element is `<div class="header-protection-legacy-display">`.
fn strip_html_legacy(body: &[u8]) -> Option<Vec<u8>> {
    let lower = body.to_ascii_lowercase();
    let marker = b"header-protection-legacy-display";
    let at = lower.windows(marker.len()).position(|w| w == marker)?;
    let start = lower[..at].windows(4).rposition(|w| w == b"<div")?;
    let close = b"</div>";
    let end = at + lower[at..].windows(close.len()).position(|w| w == close)? + close.len();
    let mut out = body[..start].to_vec();
    out.extend_from_slice(&body[end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_their_charset() {
        let body = b"hi\n-----BEGIN PGP MESSAGE-----\nCharset: ISO-8859-1\n\nabc\n-----END PGP MESSAGE-----\nbye\n";
        let blocks = find_blocks(body);
        assert_eq!(blocks.len(), 1);
        let (s, e) = blocks[0];
        assert!(body[s..e].starts_with(BEGIN));
        assert!(body[s..e].ends_with(b"-----END PGP MESSAGE-----\n"));
        assert_eq!(armor_charset(&body[s..e]).as_deref(), Some("ISO-8859-1"));
        assert!(find_blocks(b"-----BEGIN PGP MESSAGE-----\nnever ends\n").is_empty());
    }

    #[test]
    fn legacy_display_elements_are_removed() {
        assert_eq!(
            strip_plain_legacy(b"Subject: x\r\nFrom: y\r\n\r\nthe text\r\n").as_deref(),
            Some(&b"the text\r\n"[..])
        );
        let html = b"<html><body><DIV class=\"header-protection-legacy-display\"><pre>Subject: x</pre></div><p>hi</p></body></html>";
        assert_eq!(
            strip_html_legacy(html).as_deref(),
            Some(&b"<html><body><p>hi</p></body></html>"[..])
        );
    }

    #[test]
    fn newlines_are_made_uniform() {
        assert_eq!(&*with_newlines(b"a\r\nb\nc", b"\n"), b"a\nb\nc");
        assert_eq!(&*with_newlines(b"a\nb\r\n", b"\r\n"), b"a\r\nb\r\n");
    }
}
