//! Inline PGP: `-----BEGIN PGP MESSAGE-----` blocks in text parts, each replaced by its
//! plaintext (as UTF-8 when both sides can be read as text).

use super::{
    mime::{self, ContentType, Entity},
    with_body, with_newlines, Walker, BEGIN, END,
};
use crate::error::Result;

impl Walker<'_, '_> {
    /// Text with `-----BEGIN PGP MESSAGE-----` blocks: each block becomes its plaintext.
    pub(super) fn decrypt_inline(
        &mut self,
        e: &Entity<'_>,
        ct: &ContentType,
    ) -> Result<Option<Vec<u8>>> {
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
}

/// Text parts that are read, not attached files, may hold inline PGP.
pub(super) fn is_inline_candidate(e: &Entity<'_>, ct: &ContentType) -> bool {
    let attachment = e
        .field("Content-Disposition")
        .is_some_and(|f| f.value().to_ascii_lowercase().starts_with("attachment"));
    !attachment && (ct.is("text/plain") || ct.is("application/pgp"))
}

/// Byte ranges of whole armored message blocks (BEGIN line to the end of the END line).
pub(super) fn find_blocks(body: &[u8]) -> Vec<(usize, usize)> {
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
pub(super) fn armor_charset(block: &[u8]) -> Option<String> {
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
}
