//! Header protection (RFC 9788 `hp="cipher"`, and the older protected-headers="v1"): the
//! payload's header fields replace the outer ones, and legacy-display copies are removed.

use std::borrow::Cow;

use super::{
    mime::{self, Entity, Field, Multipart},
    reassemble, with_body, Walker, MAX_DEPTH,
};

impl Walker<'_, '_> {
    /// The top-level result of a PGP/MIME message: the outer header (protected fields
    /// restored when the payload carries them) with the payload's content fields and body.
    pub(super) fn merge_headers(
        &mut self,
        outer: &Entity<'_>,
        inner: &Entity<'_>,
        depth: usize,
    ) -> Vec<u8> {
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
}
