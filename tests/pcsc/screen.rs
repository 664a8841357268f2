//! A screen for the desktop clients and what a user sees on it: Xvfb, a session bus of the
//! client's own, and the text of a program's windows read through AT-SPI (the accessibility
//! bus screen readers use), so a test reads what the window shows, not what the program logs.

use std::io::{BufRead, BufReader};

use super::*;

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

/// Every name and text in the windows of the AT-SPI application `app`, one per line
/// (Debian's python3-pyatspi; menus left out).
const ATSPI_TEXT: &str = r#"
import sys, pyatspi
def walk(node, depth, out):
    if node is None or depth > 60:
        return
    if node.getRoleName() in ("menu", "menu item", "check menu item", "menu bar"):
        return
    if node.name:
        out.append(node.name)
    try:
        text = node.queryText()
        out.append(text.getText(0, text.characterCount))
    except NotImplementedError:
        pass
    for i in range(node.childCount):
        walk(node.getChildAtIndex(i), depth + 1, out)
desktop = pyatspi.Registry.getDesktop(0)
for i in range(desktop.childCount):
    app = desktop.getChildAtIndex(i)
    if app is not None and app.name == sys.argv[1]:
        out = []
        walk(app, 0, out)
        print("\n".join(out))
"#;

/// What `app` shows now, read through AT-SPI on the session bus at `bus`.
pub(crate) fn shown_text(env: &Env, bus: &str, app: &str) -> String {
    let script = env.path("atspi-text.py");
    std::fs::write(&script, ATSPI_TEXT).expect("script");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(app)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .expect("python3 (scripts/test.sh installs python3-pyatspi)");
    assert!(out.status.success(), "AT-SPI: {}", text(&out.stderr));
    text(&out.stdout)
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
