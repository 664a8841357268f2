//! Just enough RFC 5322 / MIME to take a message apart and put it back together byte for
//! byte: header fields keep their raw bytes (folding, order, line endings), bodies are
//! slices of the input, and only the parts we decrypt are ever re-encoded.

use base64::Engine;

/// One header field as written: its name and the raw bytes of the whole field, folded
/// continuation lines and the final line ending included.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
}

impl Field<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value, unfolded and trimmed (lossy UTF-8; encoded words are left as they are).
    pub fn value(&self) -> String {
        let after = &self.raw[self.name.len() + 1..];
        let text = String::from_utf8_lossy(after);
        let unfolded: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        unfolded.trim().to_string()
    }

    /// MIME-related fields belong to the entity's content, not to the message around it.
    pub fn is_content(&self) -> bool {
        // Bytes, not a str slice: a field name is not always ASCII, and cutting a character
        // in two would panic.
        self.name
            .as_bytes()
            .get(..8)
            .is_some_and(|start| start.eq_ignore_ascii_case(b"content-"))
            || self.is("MIME-Version")
    }
}

/// A message or body part: header fields, the blank line after them, and the body.
#[derive(Debug, Clone)]
pub struct Entity<'a> {
    pub fields: Vec<Field<'a>>,
    /// The empty line that ends the header ("\r\n", "\n", or nothing if there is no body).
    pub separator: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> Entity<'a> {
    pub fn parse(bytes: &'a [u8]) -> Entity<'a> {
        let mut fields: Vec<Field<'a>> = Vec::new();
        let mut pos = 0;
        let mut field_start: Option<(usize, usize)> = None; // start, name length
        let flush = |fields: &mut Vec<Field<'a>>, start: Option<(usize, usize)>, end: usize| {
            if let Some((s, n)) = start {
                if let Ok(name) = std::str::from_utf8(&bytes[s..s + n]) {
                    fields.push(Field {
                        name,
                        raw: &bytes[s..end],
                    });
                }
            }
        };
        while pos < bytes.len() {
            let end = line_end(bytes, pos);
            let line = &bytes[pos..end];
            if line == b"\n" || line == b"\r\n" {
                flush(&mut fields, field_start, pos);
                return Entity {
                    fields,
                    separator: line,
                    body: &bytes[end..],
                };
            }
            if line[0] == b' ' || line[0] == b'\t' {
                // Continuation of the field before (or stray whitespace: kept with it).
                if field_start.is_none() {
                    field_start = Some((pos, 0));
                }
            } else if let Some(colon) = line.iter().position(|&b| b == b':') {
                flush(&mut fields, field_start, pos);
                let name = &line[..colon];
                field_start = if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
                    None
                } else {
                    Some((pos, colon))
                };
            } else {
                // Not a header line: the header ended without a blank line.
                flush(&mut fields, field_start, pos);
                return Entity {
                    fields,
                    separator: b"",
                    body: &bytes[pos..],
                };
            }
            pos = end;
        }
        flush(&mut fields, field_start, pos);
        Entity {
            fields,
            separator: b"",
            body: &bytes[bytes.len()..],
        }
    }

    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.is(name))
    }

    pub fn content_type(&self) -> ContentType {
        self.field("Content-Type")
            .map(|f| ContentType::parse(&f.value()))
            .unwrap_or_default()
    }

    pub fn transfer_encoding(&self) -> String {
        self.field("Content-Transfer-Encoding")
            .map(|f| f.value().to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The body with its transfer encoding undone.
    pub fn decoded_body(&self) -> Vec<u8> {
        decode(self.body, &self.transfer_encoding())
    }

    /// "\r\n" if the entity's header uses CRLF line endings, else "\n".
    pub fn newline(&self) -> &'static [u8] {
        match self.fields.first() {
            Some(f) if f.raw.ends_with(b"\r\n") => b"\r\n",
            Some(_) => b"\n",
            None if self.separator == b"\r\n" => b"\r\n",
            None => b"\n",
        }
    }
}

/// Offset just past the line starting at `pos` (its line ending included).
pub(crate) fn line_end(bytes: &[u8], pos: usize) -> usize {
    match bytes[pos..].iter().position(|&b| b == b'\n') {
        Some(i) => pos + i + 1,
        None => bytes.len(),
    }
}

/// `type/subtype; name=value; ...`, names lower-cased, values unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl Default for ContentType {
    fn default() -> Self {
        ContentType {
            mime: "text/plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
        }
    }
}

impl ContentType {
    /// Parses a field value. By hand, not with mailparse: its parser splits a quoted
    /// parameter value at a `;` inside the quotes (`x="a;b"` gives `"a`), which RFC 2045
    /// allows and which decides where a boundary or protocol ends.
    pub fn parse(value: &str) -> ContentType {
        let mut parts = split_params(value).into_iter();
        let mime = parts
            .next()
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| m.contains('/'))
            .unwrap_or_else(|| "text/plain".into());
        let params = parts
            .filter_map(|p| {
                let (name, value) = p.split_once('=')?;
                Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
            })
            .collect();
        ContentType { mime, params }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, mime: &str) -> bool {
        self.mime == mime
    }

    pub fn set_param(&mut self, name: &str, value: &str) {
        self.params.retain(|(n, _)| n != name);
        self.params.push((name.into(), value.into()));
    }

    pub fn remove_param(&mut self, name: &str) {
        self.params.retain(|(n, _)| n != name);
    }

    /// The whole `Content-Type:` field, with `newline` at the end.
    pub fn to_field(&self, newline: &[u8]) -> Vec<u8> {
        let mut text = format!("Content-Type: {}", self.mime);
        for (name, value) in &self.params {
            let needs_quotes = value.is_empty()
                || value
                    .bytes()
                    .any(|b| b" ()<>@,;:\\\"/[]?=".contains(&b) || !(0x21..=0x7e).contains(&b));
            if needs_quotes {
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                text.push_str(&format!(";{}{name}=\"{escaped}\"", fold(newline)));
            } else {
                text.push_str(&format!(";{}{name}={value}", fold(newline)));
            }
        }
        let mut out = text.into_bytes();
        out.extend_from_slice(newline);
        out
    }
}

fn fold(newline: &[u8]) -> String {
    format!("{} ", String::from_utf8_lossy(newline))
}

/// Splits at `;` outside quoted strings.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for ch in value.chars() {
        let current = out.last_mut().expect("never empty");
        if escaped {
            current.push(ch);
            escaped = false;
        } else if quoted && ch == '\\' {
            current.push(ch);
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
            current.push(ch);
        } else if ch == ';' && !quoted {
            out.push(String::new());
        } else {
            current.push(ch);
        }
    }
    out
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => value.to_string(),
    }
}

/// The parts of a multipart body, as slices of it.
#[derive(Debug)]
pub struct Multipart<'a> {
    pub preamble: &'a [u8],
    /// Each part's bytes, without the line ending that belongs to the next delimiter.
    pub parts: Vec<&'a [u8]>,
    /// Everything from the line ending before the first delimiter to the end of each
    /// delimiter line: `delimiters[i]` precedes `parts[i]`; the last one is the close.
    pub delimiters: Vec<&'a [u8]>,
    pub epilogue: &'a [u8],
}

impl<'a> Multipart<'a> {
    /// Splits `body` at `--boundary` lines; `None` when there is no closing delimiter or
    /// no part at all (a broken multipart is left alone).
    pub fn split(body: &'a [u8], boundary: &str) -> Option<Multipart<'a>> {
        let dash = format!("--{boundary}");
        let dash = dash.as_bytes();
        let mut delimiter_lines = Vec::new(); // (start of preceding newline, line end, closing)
        let mut pos = 0;
        while pos < body.len() {
            let end = line_end(body, pos);
            let line = &body[pos..end];
            if let Some(rest) = line.strip_prefix(dash) {
                let (closing, rest) = match rest.strip_prefix(b"--") {
                    Some(r) => (true, r),
                    None => (false, rest),
                };
                if rest.iter().all(|b| b.is_ascii_whitespace()) {
                    let before = if pos >= 2 && &body[pos - 2..pos] == b"\r\n" {
                        pos - 2
                    } else if pos >= 1 && body[pos - 1] == b'\n' {
                        pos - 1
                    } else {
                        pos
                    };
                    delimiter_lines.push((before, end, closing));
                    if closing {
                        break;
                    }
                }
            }
            pos = end;
        }
        let closed = delimiter_lines.last().is_some_and(|d| d.2);
        if !closed || delimiter_lines.len() < 2 {
            return None;
        }
        let preamble = &body[..delimiter_lines[0].0];
        let mut parts = Vec::new();
        let mut delimiters = Vec::new();
        for pair in delimiter_lines.windows(2) {
            let (start, end, _) = pair[0];
            delimiters.push(&body[start..end]);
            parts.push(&body[end..pair[1].0.max(end)]);
        }
        let (start, end, _) = *delimiter_lines.last().expect("checked");
        delimiters.push(&body[start..end]);
        Some(Multipart {
            preamble,
            parts,
            delimiters,
            epilogue: &body[end..],
        })
    }
}

/// Undoes a Content-Transfer-Encoding; unknown encodings are taken as identity.
pub fn decode(body: &[u8], encoding: &str) -> Vec<u8> {
    match encoding {
        "base64" => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
                .collect();
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(&clean)
                .or_else(|_| {
                    // A trailing partial group: decode what forms whole bytes.
                    let whole = clean.len() - clean.len() % 4;
                    base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean[..whole])
                })
                .unwrap_or_default()
        }
        // Robust: a stray '=' or a bad escape stays as it is, as mail readers show it.
        "quoted-printable" => {
            quoted_printable::decode(body, quoted_printable::ParseMode::Robust).unwrap_or_default()
        }
        _ => body.to_vec(),
    }
}

/// Text in `charset` as a string; `None` when the charset is unknown or the bytes are not
/// valid in it (nothing is replaced: the caller then keeps the bytes as they are).
pub fn to_text(bytes: &[u8], charset: &str) -> Option<String> {
    let label = if charset.is_empty() { "utf-8" } else { charset };
    let encoding = match label.to_ascii_lowercase().as_str() {
        // WHATWG maps both to windows-1252; mail means 7-bit ASCII, a subset of UTF-8.
        "us-ascii" | "ascii" => encoding_rs::UTF_8,
        _ => encoding_rs::Encoding::for_label(label.as_bytes())?,
    };
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the mail fuzz target: a field name with a multi-byte character across byte 8.
    #[test]
    fn a_field_name_that_is_not_ascii_is_no_content_field() {
        let field = Field {
            name: "Content\u{6fb}isposition",
            raw: "Content\u{6fb}isposition: inline\n".as_bytes(),
        };
        assert!(!field.is_content());
        let content = Field {
            name: "Content-Type",
            raw: b"Content-Type: text/plain\n",
        };
        assert!(content.is_content());
    }

    #[test]
    fn header_fields_keep_their_bytes_and_unfold() {
        let msg = b"Subject: one\r\n two\r\nFrom: a@b\r\n\r\nbody\r\n";
        let e = Entity::parse(msg);
        assert_eq!(e.fields.len(), 2);
        assert_eq!(e.fields[0].raw, b"Subject: one\r\n two\r\n");
        assert_eq!(e.fields[0].value(), "one two");
        assert_eq!(e.separator, b"\r\n");
        assert_eq!(e.body, b"body\r\n");
        assert_eq!(e.newline(), b"\r\n");
        let headless = Entity::parse(b"\nonly body");
        assert!(headless.fields.is_empty());
        assert_eq!(headless.body, b"only body");
    }

    #[test]
    fn content_type_params_quoted_and_not() {
        let ct = ContentType::parse(
            "Multipart/Encrypted; protocol=\"application/pgp-encrypted\";\n boundary=abc;x=\"a;b\"",
        );
        assert_eq!(ct.mime, "multipart/encrypted");
        assert_eq!(ct.param("protocol"), Some("application/pgp-encrypted"));
        assert_eq!(ct.param("boundary"), Some("abc"));
        assert_eq!(ct.param("x"), Some("a;b"));
        let field = ct.to_field(b"\n");
        let again = Entity::parse(&field);
        assert_eq!(again.content_type(), ct);
    }

    #[test]
    fn multipart_split_and_reassemble() {
        let body = b"pre\n--b\nA: 1\n\none\n--b\n\ntwo\r\n--b--\nepi\n";
        let m = Multipart::split(body, "b").expect("split");
        assert_eq!(m.preamble, b"pre");
        assert_eq!(m.parts, [&b"A: 1\n\none"[..], &b"\ntwo"[..]]);
        assert_eq!(m.epilogue, b"epi\n");
        let mut again = m.preamble.to_vec();
        for (d, p) in m.delimiters.iter().zip(&m.parts) {
            again.extend_from_slice(d);
            again.extend_from_slice(p);
        }
        again.extend_from_slice(m.delimiters.last().expect("close"));
        again.extend_from_slice(m.epilogue);
        assert_eq!(again, body);
        assert!(Multipart::split(b"--b\nno close\n", "b").is_none());
    }

    #[test]
    fn transfer_encodings() {
        assert_eq!(decode(b"aGVs\r\nbG8=\r\n", "base64"), b"hello");
        assert_eq!(
            decode(b"caf=C3=A9 =\r\nx=3D1", "quoted-printable"),
            "café x=1".as_bytes()
        );
        assert_eq!(decode(b"as is", "8bit"), b"as is");
        assert_eq!(to_text(&[0x63, 0xe9], "ISO-8859-1").as_deref(), Some("cé"));
        assert_eq!(to_text(&[0xff], "utf-8"), None);
    }
}
