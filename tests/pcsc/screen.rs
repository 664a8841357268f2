//! A screen for the desktop clients and what a user sees on it: Xvfb, a session bus of the
//! client's own, and the text of a program's windows read through AT-SPI (the accessibility
//! bus screen readers use), so a test reads what the window shows, not what the program logs.

use std::io::{BufRead, BufReader};

use super::*;
use crate::front_end::{FrontEnd, CARD_FPR};

/// Two PGP/MIME emails to the card with `secret` as their text: one as gpg encrypted it
/// (subject `subject`), one with a bit of its encrypted data flipped near the end, inside
/// the last packet, so the card still unwraps the session key (subject "tampered").
pub(crate) fn card_emails(front: &FrontEnd, subject: &str, secret: &str) -> (Vec<u8>, Vec<u8>) {
    let body = format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{secret}\r\n");
    let out = front.gpg(&["-r", CARD_FPR, "--encrypt"], body.as_bytes());
    assert_ok(&out, "encrypt");
    let mut tampered = out.stdout.clone();
    let near_end = tampered.len() - 30;
    tampered[near_end] ^= 0x01;
    (
        pgp_mime_email(subject, &armored(&out.stdout)),
        pgp_mime_email("tampered", &armored(&tampered)),
    )
}

fn armored(binary: &[u8]) -> Vec<u8> {
    use sequoia_openpgp::armor::{Kind, Writer};
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, Kind::Message).expect("armor");
    w.write_all(binary).expect("armor");
    w.finalize().expect("armor");
    out
}

/// An X server of our own: Xvfb picks a free display and writes its number.
pub(crate) struct Xvfb {
    child: Child,
    pub(crate) display: String,
}

impl Xvfb {
    pub(crate) fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x1024x24"])
            .args(["-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/test.sh installs xvfb)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("Xvfb's display");
        let display = format!(":{}", line.trim());
        assert!(display.len() > 1, "Xvfb wrote no display number");
        Xvfb { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// AT-SPI as a user's hands and eyes (Debian's python3-pyatspi): `text APP` prints every name
/// and text in APP's windows, one per line (menus left out); `chrome APP` the same without
/// web content (WebKit builds a page's accessible tree when first asked, and one asked before
/// the page loaded can stay empty); `select APP NAME` selects the
/// table row whose cell is named NAME.
const ATSPI: &str = r#"
import sys, pyatspi
MENUS = ("menu", "menu item", "check menu item", "menu bar")
mode, name = sys.argv[1:3]
def nodes(node, depth=0):
    if node is None or depth > 60 or node.getRoleName() in MENUS:
        return
    if mode != "text" and node.getRoleName() == "document web":
        return
    yield node
    for i in range(node.childCount):
        yield from nodes(node.getChildAtIndex(i), depth + 1)
def app(name):
    desktop = pyatspi.Registry.getDesktop(0)
    apps = [desktop.getChildAtIndex(i) for i in range(desktop.childCount)]
    return next((a for a in apps if a is not None and a.name == name), None)
root = app(name)
if mode in ("text", "chrome"):
    for node in nodes(root):
        if node.name:
            print(node.name)
        try:
            text = node.queryText()
            print(text.getText(0, text.characterCount))
        except NotImplementedError:
            pass
elif mode == "select":
    for node in nodes(root):
        parent = node.parent
        if node.name == sys.argv[3] and parent is not None and "table" in parent.getRoleName():
            print(parent.querySelection().selectChild(node.getIndexInParent()))
            break
"#;

/// Runs the AT-SPI tool in `mode` on `app` over the session bus at `bus`; its output.
pub(crate) fn atspi(env: &Env, bus: &str, mode: &str, app: &str, arg: &str) -> String {
    let script = env.path("atspi.py");
    if !script.exists() {
        std::fs::write(&script, ATSPI).expect("script");
    }
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .args([mode, app, arg])
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .expect("python3 (scripts/test.sh installs python3-pyatspi)");
    assert!(out.status.success(), "AT-SPI {mode}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// What `app` shows now.
pub(crate) fn shown_text(env: &Env, bus: &str, app: &str) -> String {
    atspi(env, bus, "text", app, "")
}

/// What `app` shows now outside web content.
pub(crate) fn shown_chrome(env: &Env, bus: &str, app: &str) -> String {
    atspi(env, bus, "chrome", app, "")
}

/// Polls what `app` shows until `done` says so or a minute passed; the last text seen.
pub(crate) fn wait_shown(env: &Env, bus: &str, app: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = shown_text(env, bus, app);
        if done(&shown) || Instant::now() > deadline {
            return shown;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A desktop program's process group, killed when dropped (its launcher, helpers and all).
pub(crate) struct Group(pub(crate) Child);

impl Group {
    /// Starts `cmd` in a process group of its own, its output into the file `log`.
    pub(crate) fn start(cmd: &mut Command, log: &Path) -> Group {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::create(log).expect("log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/test.sh installs it)"));
        Group(child)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}
