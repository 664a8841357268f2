//! Telling a running scdaemon that we reset a card it shares.
//!
//! scdaemon with `pcsc-shared` remembers that it verified the PIN and learns of a reset only
//! when its next command to the card fails: gpg says "General error" once, and the command
//! after works. When we reset a shared card to lock it (see [`super::forget`]), we spend
//! that failure ourselves, on a question that changes nothing, through the user's own
//! gpg-agent. Only a scdaemon already running is asked: asking for a card attribute would
//! otherwise start one, and one without `pcsc-shared` takes the card for itself.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// How long gpg-agent may take to answer one call.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// Lets a running scdaemon notice that the card was reset. Quietly does nothing without
/// gpg-agent, scdaemon or gpg-connect-agent.
pub fn tell_of_reset() {
    if ask_agent("getinfo scd_running") {
        // It fails (the card was reset), and that failure is what resets scdaemon's state.
        ask_agent("scd getattr CHV-STATUS");
    }
}

/// Sends one command to the user's gpg-agent, never starting one. Whether it answered OK.
fn ask_agent(command: &str) -> bool {
    let child = Command::new("gpg-connect-agent")
        .args(["--no-autostart", command, "/bye"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let until = Instant::now() + ANSWER_WITHIN;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut answer = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut answer);
    }
    status.is_some_and(|s| s.success()) && answered_ok(&answer)
}

/// Whether an Assuan conversation ended in OK (not ERR).
fn answered_ok(answer: &str) -> bool {
    answer
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l == "OK" || l.starts_with("OK "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_final_ok_is_ok() {
        assert!(answered_ok("OK\n"));
        assert!(answered_ok("D 1\nOK\n"));
        assert!(!answered_ok("ERR 100663297 General error <SCD>\n"));
        assert!(!answered_ok(""));
    }
}
