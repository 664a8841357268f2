//! `cardecrypt inspect --mailbox`: a maildir and an mbox of mail from gpg, OpenPGP.js and
//! Sequoia, with and without protected subjects, hidden recipients, Version headers,
//! Received chains, attachments outside, SED, clear and signed-only mail, over two months
//! and four correspondents. Every count is checked in the JSON and in the text; the HTML
//! page is opened in a real browser. Whole processes, no card or pcscd.

mod common;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

#[path = "mailbox/fixture.rs"]
mod fixture;

use common::*;
use fixture::*;
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardecrypt"))
        .env_remove("PCSCLITE_CSOCK_NAME")
        .args(["inspect", "--mailbox"])
        .args(args)
        .output()
        .expect("cardecrypt")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).expect("utf8");
    assert!(!text.contains(BODY), "a body was shown:\n{text}");
    text
}

/// Messages of the leak `kind` in `leaks` (a JSON list of leak counts); 0 when absent.
fn leak(leaks: &Value, kind: &str) -> u64 {
    leaks
        .as_array()
        .expect("leaks")
        .iter()
        .find(|l| l["kind"] == kind)
        .map_or(0, |l| l["messages"].as_u64().expect("count"))
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Fixture {
    _gpg: Gpg,
    dir: tempfile::TempDir,
    mail: Vec<Mail>,
}

fn fixture() -> Option<Fixture> {
    let ojs = common::openpgpjs("openpgp", "OPENPGPJS")?;
    let gpg = Gpg::new();
    let mail = fixture_mail(&gpg, &ojs);
    Some(Fixture {
        _gpg: gpg,
        dir: tempfile::tempdir().expect("tempdir"),
        mail,
    })
}

/// The numbers every form of the fixture must give (the sums of the lists in
/// [`fixture::fixture_mail`]).
fn check_counts(s: &Value) {
    assert_eq!(s["version"], 1);
    assert_eq!(s["messages"], 8);
    let k = &s["kinds"];
    assert_eq!(
        [
            &k["pgp_mime"],
            &k["inline"],
            &k["signed_only"],
            &k["clear"],
            &k["malformed"]
        ],
        [4, 1, 1, 1, 1],
        "{k}"
    );
    assert_eq!(s["encrypted"], 5);
    let l = &s["leaks"];
    for (kind, n) in [
        ("subject_in_clear", 4),
        ("recipient_key_ids", 4),
        ("sender_software", 3),
        ("sender_address", 2),
        ("parts_outside", 1),
        ("no_integrity", 1),
        ("seipd_v1", 3),
        ("inline_pgp", 1),
        ("time_zone", 2),
        ("autocrypt", 1),
        ("other_recipients", 0),
    ] {
        assert_eq!(leak(l, kind), n, "{kind}: {l}");
    }
    assert_eq!(
        l[0]["share"], 0.8,
        "most first, as a share of encrypted mail"
    );
    let containers: Vec<(String, u64)> = s["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap_or("").into(),
                c["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for want in [("SEIPDv1", 3), ("SEIPDv2", 1), ("SED", 1)] {
        assert!(
            containers.contains(&(want.0.into(), want.1)),
            "{containers:?}"
        );
    }
    let months: Vec<(String, u64, u64, u64)> = s["months"]
        .as_array()
        .expect("months")
        .iter()
        .map(|m| {
            let n = |f: &str| m[f].as_u64().expect("n");
            (
                m["month"].as_str().unwrap_or("").into(),
                n("messages"),
                n("encrypted"),
                n("subject_in_clear"),
            )
        })
        .collect();
    assert_eq!(
        months,
        [("2026-10".into(), 2, 2, 2), ("2026-11".into(), 5, 3, 2)]
    );
    let names: Vec<&str> = s["malformed"]
        .as_array()
        .expect("malformed")
        .iter()
        .map(|m| m["location"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

fn correspondent<'a>(s: &'a Value, who: &str) -> &'a Value {
    s["correspondents"]
        .as_array()
        .expect("correspondents")
        .iter()
        .find(|c| c["who"] == who)
        .unwrap_or_else(|| panic!("no {who} in {}", s["correspondents"]))
}

#[test]
fn a_maildir_is_counted_per_leak_month_and_correspondent() {
    let Some(f) = fixture() else { return };
    let inbox = f.dir.path().join("INBOX");
    write_maildir(&inbox, &f.mail);
    let out = run(&[&path(&inbox), "--json", "--me", "Me@Example.org"]);
    let s: Value = serde_json::from_str(&ok(&out)).expect("json");
    assert!(out.stderr.is_empty(), "no progress line off a terminal");
    check_counts(&s);
    assert!(
        s["malformed"][0]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("/cur/1700000007.M7P1.host:2,S")),
        "{}",
        s["malformed"]
    );

    // Per correspondent, most leaking first: alice 8 leaks, carol 6, bob 5, dave 1.
    let order: Vec<&str> = s["correspondents"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["who"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        order,
        [
            "alice@example.org",
            "carol@example.com",
            "bob@example.net",
            "dave@example.com"
        ]
    );
    let alice = correspondent(&s, "alice@example.org");
    assert_eq!(
        (alice["messages"].as_u64(), alice["encrypted"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(leak(&alice["leaks"], "seipd_v1"), 2);
    assert_eq!(leak(&alice["leaks"], "subject_in_clear"), 1);
    assert_eq!(
        alice["changes"],
        serde_json::json!(["move to SEIPD v2 (RFC 9580)", "protect the subject"])
    );
    assert_eq!(
        alice["how"],
        serde_json::json!([{"value": "PGP/MIME, SEIPDv1", "count": 2}])
    );
    let software = alice["software"].to_string();
    assert!(
        software.contains("Version: GnuPG") && software.contains("Mutt/2.2.9"),
        "{software}"
    );
    let bob = correspondent(&s, "bob@example.net");
    assert_eq!(leak(&bob["leaks"], "sender_address"), 1);
    assert_eq!(leak(&bob["leaks"], "autocrypt"), 1);
    assert_eq!(
        leak(&bob["leaks"], "seipd_v1"),
        0,
        "OpenPGP.js wrote SEIPD v2"
    );
    let carol = correspondent(&s, "carol@example.com");
    let how = carol["how"].to_string();
    assert!(
        how.contains("inline PGP, SED") && how.contains("signed only"),
        "{how}"
    );
    assert_eq!(
        correspondent(&s, "bob@example.net")["how"][0]["value"],
        "PGP/MIME, SEIPDv2"
    );
    assert_eq!(leak(&carol["leaks"], "not_encrypted"), 1);
    assert_eq!(leak(&carol["leaks"], "no_integrity"), 1);
    let dave = correspondent(&s, "dave@example.com");
    assert_eq!(dave["changes"], serde_json::json!(["encrypt"]));

    // My own mail: apart from the correspondents, with every setting to change.
    let me = &s["me"];
    assert_eq!(me["messages"], 1);
    assert_eq!(me["leaks"].as_array().map(Vec::len), Some(4), "{me}");
    assert_eq!(me["changes"].as_array().map(Vec::len), Some(4));
    assert!(me["changes"].to_string().contains("throw-keyids"));

    // The file names of parts outside, the software and the addresses are named.
    let all = s["leaks"].to_string();
    for value in [
        "budget.xlsx",
        "198.51.100.7",
        "203.0.113.9",
        "WebMail 4.1",
        "+0200",
        "-0500",
    ] {
        assert!(all.contains(value), "{value} not in {all}");
    }

    // The text says the same numbers, in 80 columns.
    let text = ok(&run(&[&path(&inbox), "--me", "me@example.org"]));
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line}");
    }
    let t = flat(&text);
    for fact in [
        "8 messages",
        "encrypted, PGP/MIME 4 50.0%",
        "encrypted, inline PGP 1 12.5%",
        "signed only 1 12.5%",
        "malformed (listed below) 1 12.5%",
        "What the encrypted mail gives away (5 messages)",
        "subject in the clear 4 80.0%",
        "recipients' key ids visible 4 80.0%",
        "no integrity protection (SED) 1 20.0%",
        "2026-10 2 messages 2 encrypted 2 with the subject in the clear",
        "alice@example.org: 2 messages, 2 encrypted",
        "could: move to SEIPD v2 (RFC 9580); protect the subject",
        "My own mail",
        "add throw-keyids to gpg.conf",
        "no header fields at its start",
    ] {
        assert!(t.contains(fact), "text lacks {fact:?}:\n{text}");
    }
    assert!(
        t.find("alice@example.org").expect("alice") < t.find("carol@example.com").expect("carol")
    );

    // Grouped by domain: example.com is carol's and dave's.
    let s: Value =
        serde_json::from_str(&ok(&run(&[&path(&inbox), "--json", "--by-domain"]))).expect("json");
    let com = correspondent(&s, "example.com");
    assert_eq!(com["messages"], 3);
    assert!(s["me"].is_null(), "no --me, and INBOX is not a Sent folder");
}

#[test]
fn an_mbox_gives_the_same_counts_and_names_lines() {
    let Some(f) = fixture() else { return };
    let mbox = f.dir.path().join("archive.mbox");
    std::fs::write(&mbox, mbox_bytes(&f.mail)).expect("write");
    let s: Value = serde_json::from_str(&ok(&run(&[
        &path(&mbox),
        "--json",
        "--me",
        "me@example.org",
    ])))
    .expect("json");
    check_counts(&s);
    // The malformed message is the last one: its "From " line is named.
    let bytes = std::fs::read(&mbox).expect("read");
    let last_from = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| l.starts_with(b"From nobody"))
        .map(|(n, _)| n + 1)
        .next()
        .expect("line");
    assert_eq!(
        s["malformed"][0]["location"],
        format!("{}:{last_from}", mbox.display())
    );
}

#[test]
fn a_folder_of_mailboxes_needs_recursive_and_a_sent_folder_is_mine() {
    let Some(f) = fixture() else { return };
    let top = f.dir.path().join("Mail");
    write_maildir(&top.join("INBOX"), &f.mail[..6]);
    write_maildir(&top.join(".Sent"), &f.mail[6..7]);
    std::fs::write(top.join("old.mbox"), mbox_bytes(&f.mail[7..])).expect("write");
    std::fs::write(top.join("notes.txt"), b"not a mailbox").expect("write");

    let refused = run(&[&path(&top)]);
    assert_eq!(refused.status.code(), Some(2));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("--recursive") && why.lines().count() <= 2,
        "{why}"
    );

    let s: Value =
        serde_json::from_str(&ok(&run(&[&path(&top), "--recursive", "--json"]))).expect("json");
    assert_eq!(
        s["mailboxes"].as_array().map(Vec::len),
        Some(3),
        "{}",
        s["mailboxes"]
    );
    check_counts(&s);
    assert_eq!(s["me"]["who"], "the Sent folder");
    assert_eq!(s["me"]["messages"], 1);
    assert!(s["correspondents"]
        .to_string()
        .contains("alice@example.org"));
}

#[test]
fn the_html_page_is_private_self_contained_and_reads_in_a_browser() {
    let Some(f) = fixture() else { return };
    let inbox = f.dir.path().join("INBOX");
    write_maildir(&inbox, &f.mail);
    let page = f.dir.path().join("report.html");
    let report = f.dir.path().join("report.json");
    ok(&run(&[
        &path(&inbox),
        "--me",
        "me@example.org",
        "--html",
        &path(&page),
        "--json",
        "-o",
        &path(&report),
    ]));
    for file in [&page, &report] {
        let mode = std::fs::metadata(file)
            .expect("report")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    check_counts(
        &serde_json::from_str(&std::fs::read_to_string(&report).expect("json")).expect("json"),
    );
    // An existing report is not replaced without --overwrite.
    let again = run(&[&path(&inbox), "--html", &path(&page)]);
    assert!(!again.status.success());
    ok(&run(&[
        &path(&inbox),
        "--html",
        &path(&page),
        "--overwrite",
    ]));

    let html = std::fs::read_to_string(&page).expect("page");
    for outside in ["<script", "://", "src=", "url(", "href="] {
        assert!(
            !html.contains(outside),
            "{outside} in the page: not self-contained"
        );
    }
    assert!(html.contains("default-src 'none'"));
    assert!(!html.contains(BODY));

    let Some(text) = browser_text(&page, f.dir.path()) else {
        return;
    };
    let seen = flat(&text.to_lowercase());
    for words in [
        "what the encrypted mail gives away",
        "subject in the clear",
        "by month",
        "alice@example.org",
    ] {
        assert!(
            seen.contains(words),
            "the screenshot lacks {words:?}:\n{text}"
        );
    }
}

/// 3000 small messages, one of 160 MiB (an attachment of 150 MiB) and one line of 64 MiB
/// with no line break: read in bounded memory, the big ones named as read in part.
#[test]
fn a_large_mbox_is_read_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("big.mbox");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&mbox).expect("create"));
    let small = format!(
        "From carol@example.com Sat Oct 31 23:59:00 2026\nFrom: carol@example.com\n\
         Subject: s\nDate: Sat, 31 Oct 2026 23:59:00 -0500\n\n{}\n\n",
        String::from_utf8(sed_message()).expect("armor")
    );
    for _ in 0..3000 {
        w.write_all(small.as_bytes()).expect("write");
    }
    w.write_all(
        b"From dave@example.com Sun Nov  1 10:00:00 2026\nFrom: dave@example.com\n\
          Subject: big\nDate: Sun, 1 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\n\
          Content-Type: multipart/mixed; boundary=\"big-boundary-000000000000001\"\n\n\
          --big-boundary-000000000000001\nContent-Type: application/octet-stream\n\
          Content-Transfer-Encoding: base64\n\n",
    )
    .expect("write");
    let line = [b'Q'; 76];
    for _ in 0..(150 << 20) / 77 {
        w.write_all(&line)
            .and_then(|()| w.write_all(b"\n"))
            .expect("write");
    }
    w.write_all(b"--big-boundary-000000000000001--\n\n")
        .expect("write");
    w.write_all(b"From eve@example.com Sun Nov  1 11:00:00 2026\nFrom: eve@example.com\n\n")
        .expect("write");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        w.write_all(&chunk).expect("write");
    }
    drop(w);
    let size = std::fs::metadata(&mbox).expect("size").len();
    assert!(size > 200 << 20);

    let report = dir.path().join("report.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardecrypt"));
    cmd.args(["inspect", "--json", "-o"])
        .arg(&report)
        .arg("--mailbox")
        .arg(&mbox);
    let (status, kib) = peak_rss_with(
        &cmd,
        std::process::Stdio::null(),
        std::process::Stdio::null(),
    );
    assert!(status.success());
    assert!(
        kib < 96 * 1024,
        "peak RSS {kib} KiB for a {} MiB mbox",
        size >> 20
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(s["messages"], 3002);
    assert_eq!(s["bytes"].as_u64().map(|b| b > 200 << 20), Some(true));
    assert_eq!(s["kinds"]["inline"], 3000);
    assert_eq!(leak(&s["leaks"], "no_integrity"), 3000);
    assert_eq!(
        s["partly_read"].as_array().map(Vec::len),
        Some(2),
        "{}",
        s["partly_read"]
    );
}

/// The page rendered by headless Chromium, its screenshot read back by Tesseract OCR; `None`
/// (after a line) where they are not installed and the pcsc tier is not required.
fn browser_text(page: &Path, dir: &Path) -> Option<String> {
    let installed = |p: &str| Path::new(p).exists();
    if !installed("/usr/bin/chromium") || !installed("/usr/bin/tesseract") {
        assert!(
            std::env::var("CARDECRYPT_PCSC_TESTS").as_deref() != Ok("require"),
            "chromium and tesseract-ocr are required here: scripts/test.sh installs them"
        );
        eprintln!("chromium or tesseract-ocr not installed: the browser check is skipped");
        return None;
    }
    let shot = dir.join("page.png");
    let profile = tempfile::tempdir().expect("profile");
    let status = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium");
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let ocr = Command::new("/usr/bin/tesseract")
        .arg(&shot)
        .arg("stdout")
        .output()
        .expect("tesseract");
    assert!(
        ocr.status.success(),
        "{}",
        String::from_utf8_lossy(&ocr.stderr)
    );
    if let Ok(keep) = std::env::var("CARDECRYPT_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, PathBuf::from(keep));
    }
    Some(String::from_utf8_lossy(&ocr.stdout).into_owned())
}

/// On a terminal (a pseudo-terminal from `script`), a progress line on standard error, erased
/// at the end; off a terminal none (checked above).
#[test]
fn a_terminal_gets_a_progress_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("INBOX");
    let mail: Vec<Mail> = (0..3)
        .map(|n| Mail {
            from: "dave@example.com",
            bytes: format!("From: dave@example.com\nSubject: {n}\n\ntext\n").into_bytes(),
        })
        .collect();
    write_maildir(&inbox, &mail);
    let report = dir.path().join("report.json");
    let command = format!(
        "{} inspect --mailbox {} --json -o {}",
        env!("CARGO_BIN_EXE_cardecrypt"),
        inbox.display(),
        report.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    assert!(out.status.success(), "{out:?}");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(
        terminal.contains("\rcardecrypt: messages read: 1 (0.0 MiB)"),
        "{terminal:?}"
    );
    assert!(
        terminal.ends_with("\r\x1b[K"),
        "erased at the end: {terminal:?}"
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(s["kinds"]["clear"], 3);
}
