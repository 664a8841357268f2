//! The mailbox report as one self-contained HTML page: bar charts per leak and per month,
//! the correspondents and one's own settings. No scripts and no network: a content security
//! policy forbids both, and every value from the mail is escaped.

use std::fmt::Write;

use super::{Correspondent, Survey};

/// Correspondents shown on the page.
const SHOWN: usize = 50;

const STYLE: &str = "body{font:16px/1.45 sans-serif;margin:2em auto;max-width:60em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%}td,th{padding:.25em .5em;text-align:left;\
vertical-align:top}td.n{text-align:right;white-space:nowrap}.bar{background:#eee;width:16em}\
.bar div{height:1.1em;background:#c0392b}.bar div.ok{background:#2e86c1}\
.bar div.clear{background:#aaa}.bar div.stack{display:flex;background:none}.small{color:#555;font-size:.9em}li{margin:.2em 0}";

/// The page.
pub fn render(s: &Survey) -> String {
    let mut p = String::new();
    let title = format!("What {} gives away", which(s));
    let _ = write!(
        p,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\"><title>{t}</title><style>{STYLE}</style></head><body>\
         <h1>{t}</h1><p>{} messages; {} encrypted (PGP/MIME {}, inline {}), {} signed only, \
         {} clear, {} malformed. Nothing was decrypted: this is what anyone holding the \
         mailbox sees.</p>",
        s.messages,
        s.encrypted,
        s.kinds.pgp_mime,
        s.kinds.inline,
        s.kinds.signed_only,
        s.kinds.clear,
        s.kinds.malformed,
        t = esc(&title),
    );
    leaks(&mut p, s);
    months(&mut p, s);
    correspondents(&mut p, s);
    if let Some(me) = &s.me {
        let _ = write!(p, "<h2>My own mail</h2>");
        person(&mut p, me, "Settings to change");
    }
    if !s.malformed.is_empty() {
        let _ = write!(p, "<h2>Malformed ({})</h2><ul>", s.kinds.malformed);
        for m in &s.malformed {
            let _ = write!(p, "<li>{}: {}</li>", esc(&m.location), esc(&m.why));
        }
        p.push_str("</ul>");
    }
    p.push_str("</body></html>\n");
    p
}

fn which(s: &Survey) -> String {
    match s.mailboxes.as_slice() {
        [one] => std::path::Path::new(one)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| one.clone()),
        many => format!("{} mailboxes", many.len()),
    }
}

fn leaks(p: &mut String, s: &Survey) {
    let _ = write!(
        p,
        "<h2>What the encrypted mail gives away</h2><p class=\"small\">Share of the {} \
         encrypted messages, most first.</p><table>",
        s.encrypted
    );
    for l in &s.leaks {
        let details: Vec<String> = l
            .details
            .iter()
            .map(|d| format!("{} ({})", esc(&d.value), d.count))
            .collect();
        let _ = write!(
            p,
            "<tr><td>{}<div class=\"small\">{}</div></td><td class=\"n\">{}</td>\
             <td class=\"n\">{:.0}%</td><td class=\"bar\">{}</td></tr>",
            esc(&l.label),
            details.join(", "),
            l.messages,
            l.share * 100.0,
            bar(l.share, ""),
        );
    }
    p.push_str("</table>");
}

fn months(p: &mut String, s: &Survey) {
    let most = s
        .months
        .iter()
        .map(|m| m.messages)
        .max()
        .unwrap_or(1)
        .max(1);
    p.push_str(
        "<h2>By month</h2><p class=\"small\">Blue: encrypted; grey: not encrypted; red: \
         encrypted with the subject in the clear.</p><table><tr><th>Month</th><th>Messages\
         </th><th>Encrypted</th><th>Subject in the clear</th><th></th></tr>",
    );
    for m in &s.months {
        let part = |n: u64| n as f64 / most as f64;
        let _ = write!(
            p,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}\
             </td><td class=\"bar\"><div class=\"stack\">{}{}{}</div></td></tr>",
            esc(&m.month),
            m.messages,
            m.encrypted,
            m.subject_in_clear,
            bar(part(m.subject_in_clear), ""),
            bar(
                part(m.encrypted - m.subject_in_clear.min(m.encrypted)),
                "ok"
            ),
            bar(part(m.messages - m.encrypted), "clear"),
        );
    }
    p.push_str("</table>");
}

fn correspondents(p: &mut String, s: &Survey) {
    if s.correspondents.is_empty() {
        return;
    }
    p.push_str("<h2>Correspondents, most leaking first</h2>");
    for c in s.correspondents.iter().take(SHOWN) {
        person(p, c, "What they could change");
    }
    if s.correspondents.len() > SHOWN {
        let _ = write!(
            p,
            "<p class=\"small\">... and {} more (the JSON report lists every one).</p>",
            s.correspondents.len() - SHOWN
        );
    }
}

fn person(p: &mut String, c: &Correspondent, changes: &str) {
    let _ = write!(
        p,
        "<h3>{}</h3><p>{} messages, {} encrypted.",
        esc(&c.who),
        c.messages,
        c.encrypted
    );
    let how: Vec<String> = c
        .how
        .iter()
        .map(|h| format!("{} ({})", esc(&h.value), h.count))
        .collect();
    let _ = write!(p, " How: {}.", how.join(", "));
    if !c.software.is_empty() {
        let names: Vec<String> = c.software.iter().map(|s| esc(&s.value)).collect();
        let _ = write!(p, " Software: {}.", names.join(", "));
    }
    p.push_str("</p><table>");
    for l in &c.leaks {
        let _ = write!(
            p,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"bar\">{}</td></tr>",
            esc(&l.label),
            l.messages,
            bar(l.share, "")
        );
    }
    p.push_str("</table>");
    if !c.changes.is_empty() {
        let _ = write!(p, "<p>{changes}:</p><ul>");
        for change in &c.changes {
            let _ = write!(p, "<li>{}</li>", esc(change));
        }
        p.push_str("</ul>");
    }
}

/// A bar `share` (0 to 1) of the column's width.
fn bar(share: f64, class: &str) -> String {
    let width = (share.clamp(0.0, 1.0) * 100.0).round();
    if width == 0.0 {
        return String::new();
    }
    format!("<div class=\"{class}\" style=\"width:{width}%\"></div>")
}

/// Text made safe for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_mail_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
