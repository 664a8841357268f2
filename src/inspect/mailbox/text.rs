//! The mailbox report for people: 80 columns, what leaks most first.

use super::{Correspondent, Count, LeakCount, Survey};
use crate::inspect::render::wrap;

/// Correspondents listed in the text (the JSON has every one).
const SHOWN: usize = 20;
/// The longest leak label, and a column to spare.
const LABEL: usize = 38;

/// The whole report.
pub fn render(s: &Survey) -> String {
    let mut out = String::new();
    let mut line = |indent: usize, text: &str| wrap(&mut out, indent, text);
    line(
        0,
        &format!(
            "What {} gives away to whoever holds it (nothing was decrypted):",
            match s.mailboxes.as_slice() {
                [one] => one.clone(),
                many => format!("{} mailboxes", many.len()),
            }
        ),
    );
    line(2, &format!("{} messages, {}", s.messages, size(s.bytes)));
    line(0, "");
    line(0, "Messages");
    let k = &s.kinds;
    for (label, n) in [
        ("encrypted, PGP/MIME", k.pgp_mime),
        ("encrypted, inline PGP", k.inline),
        ("signed only", k.signed_only),
        ("clear", k.clear),
        ("malformed (listed below)", k.malformed),
    ] {
        line(2, &row(label, n, share(n, s.messages), false));
    }
    line(0, "");
    line(
        0,
        &format!(
            "What the encrypted mail gives away ({} messages), most first",
            s.encrypted
        ),
    );
    if s.leaks.is_empty() {
        line(2, "- Nothing found.");
    }
    for l in &s.leaks {
        leak_rows(&mut line, 2, l);
    }
    if !s.containers.is_empty() {
        line(2, &format!("Containers: {}", counts(&s.containers)));
    }
    line(0, "");
    line(0, "By month");
    for m in &s.months {
        line(
            2,
            &format!(
                "{:<8} {:>6} messages {:>6} encrypted {:>6} with the subject in the clear",
                m.month, m.messages, m.encrypted, m.subject_in_clear
            ),
        );
    }
    if !s.correspondents.is_empty() {
        line(0, "");
        line(0, "Correspondents, most leaking first");
        for c in s.correspondents.iter().take(SHOWN) {
            correspondent(&mut line, c, "could");
        }
        if s.correspondents.len() > SHOWN {
            line(
                2,
                &format!(
                    "... and {} more (--json lists every one)",
                    s.correspondents.len() - SHOWN
                ),
            );
        }
    }
    if let Some(me) = &s.me {
        line(0, "");
        line(0, "My own mail");
        correspondent(&mut line, me, "settings to change");
    }
    if !s.malformed.is_empty() {
        line(0, "");
        line(0, &format!("Malformed ({})", s.kinds.malformed));
        for m in &s.malformed {
            line(2, &format!("- {}: {}", m.location, m.why));
        }
    }
    if !s.partly_read.is_empty() {
        line(0, "");
        line(
            0,
            "Read only in part (larger than 16 MiB; headers and packets come first)",
        );
        for p in &s.partly_read {
            line(2, &format!("- {p}"));
        }
    }
    out
}

fn leak_rows(line: &mut impl FnMut(usize, &str), indent: usize, l: &LeakCount) {
    line(indent, &row(&l.label, l.messages, l.share, true));
    if !l.details.is_empty() {
        line(indent + 4, &counts(&l.details));
    }
}

fn correspondent(line: &mut impl FnMut(usize, &str), c: &Correspondent, changes: &str) {
    line(
        2,
        &format!(
            "{}: {}, {} encrypted",
            c.who,
            messages(c.messages),
            c.encrypted
        ),
    );
    line(4, &format!("how: {}", counts(&c.how)));
    if !c.leaks.is_empty() {
        let found: Vec<String> = c
            .leaks
            .iter()
            .map(|l| format!("{} {}", l.label, l.messages))
            .collect();
        line(4, &format!("gives away: {}", found.join(", ")));
    }
    if !c.software.is_empty() {
        line(4, &format!("software: {}", counts(&c.software)));
    }
    match c.changes.as_slice() {
        [] => {}
        [one] if changes == "could" => line(4, &format!("could: {one}")),
        [a, b] if changes == "could" => line(4, &format!("could: {a}; {b}")),
        all => {
            line(4, &format!("{changes}:"));
            for c in all {
                line(6, &format!("- {c}"));
            }
        }
    }
}

/// "label      count  share%  ####" (the bar with `bar`).
fn row(label: &str, n: u64, share: f64, bar: bool) -> String {
    let hashes = if bar {
        "#".repeat((share * 20.0).round() as usize)
    } else {
        String::new()
    };
    format!("{label:<LABEL$} {n:>7} {:>5.1}% {hashes}", share * 100.0)
        .trim_end()
        .to_string()
}

/// "1 message", "2 messages".
fn messages(n: u64) -> String {
    format!("{n} message{}", if n == 1 { "" } else { "s" })
}

fn counts(c: &[Count]) -> String {
    c.iter()
        .map(|c| format!("{} ({})", c.value, c.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn share(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}
