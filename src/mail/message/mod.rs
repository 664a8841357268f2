//! Whole messages: find what is encrypted (PGP/MIME, the "Exchange-mangled" PGP/MIME
//! layout, inline PGP blocks), decrypt it, restore protected headers, and give back a
//! message any MUA or indexer reads. What is not decrypted stays byte for byte as it was.
//!
//! Every encrypted piece must decrypt: one failure fails the whole message, so no partly
//! decrypted message is ever written.

use std::borrow::Cow;

use sequoia_openpgp::Cert;
use zeroize::Zeroizing;

mod inline;
mod protected;

use super::mime::{self, ContentType, Entity, Multipart};
use crate::{
    decrypt::Report,
    error::{Error, Result},
    verify::{self, SignatureCheck},
};
use inline::is_inline_candidate;

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

/// `bytes` with every line ending turned into `newline`.
fn with_newlines(bytes: &[u8], newline: &[u8]) -> Zeroizing<Vec<u8>> {
    // At most two bytes out per byte in (LF -> CRLF): no growth, so no unwiped copy.
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() * newline.len().max(1)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_made_uniform() {
        assert_eq!(&*with_newlines(b"a\r\nb\nc", b"\n"), b"a\nb\nc");
        assert_eq!(&*with_newlines(b"a\nb\r\n", b"\r\n"), b"a\r\nb\r\n");
    }
}
