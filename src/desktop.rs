//! The desktop, over D-Bus: a notification while the card waits for the user (shown only
//! once the wait passes a short delay, closed as soon as the card answered), and the
//! signals that say the user went away (the machine going to sleep, the session locking,
//! the screensaver starting), on which the unlock holder lets go.

use std::{
    collections::HashMap,
    sync::{mpsc, Arc},
    time::Duration,
};

use zbus::{blocking::Connection, message::Type, zvariant::Value, MatchRule};

/// How long a wait goes unannounced: a quick touch needs no notification (an always-on
/// message was found too noisy by age-plugin-yubikey's users).
pub const NOTICE_DELAY: Duration = Duration::from_millis(700);

/// A desktop notification that appears after a delay unless the wait ended first, and is
/// closed when this is dropped.
pub struct Notice {
    done: Option<mpsc::Sender<()>>,
    /// Disconnected when the thread has ended (the notification closed).
    ended: mpsc::Receiver<()>,
}

/// How long dropping a notice waits for the notification to close: a notification service
/// that does not answer must not hold up the command.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

impl Notice {
    /// Shows `summary` and `body` after `delay` (on the session bus's notification
    /// service), until dropped. Without a session bus or service nothing is shown.
    pub fn after(delay: Duration, summary: String, body: String) -> Notice {
        let (done, waiting) = mpsc::channel::<()>();
        let (ending, ended) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _ending = ending;
            if waiting.recv_timeout(delay) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let Ok(bus) = Connection::session() else {
                return;
            };
            let id = notify(&bus, &summary, &body);
            // Until the wait ends (the sender is dropped).
            let _ = waiting.recv();
            if let Some(id) = id {
                let _ = bus.call_method(
                    Some("org.freedesktop.Notifications"),
                    "/org/freedesktop/Notifications",
                    Some("org.freedesktop.Notifications"),
                    "CloseNotification",
                    &(id,),
                );
            }
        });
        Notice {
            done: Some(done),
            ended,
        }
    }
}

impl Drop for Notice {
    fn drop(&mut self) {
        self.done.take();
        let _ = self.ended.recv_timeout(CLOSE_WAIT);
    }
}

/// `org.freedesktop.Notifications.Notify`; the notification's id.
fn notify(bus: &Connection, summary: &str, body: &str) -> Option<u32> {
    let hints: HashMap<&str, Value<'_>> = HashMap::from([("urgency", Value::U8(2))]);
    let reply = bus
        .call_method(
            Some("org.freedesktop.Notifications"),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.Notifications"),
            "Notify",
            &(
                "cardecrypt",
                0u32,
                "dialog-password",
                summary,
                body,
                Vec::<&str>::new(),
                hints,
                -1i32,
            ),
        )
        .ok()?;
    reply.body().deserialize::<u32>().ok()
}

/// The signals that mean the user went away: (bus, interface, member). `PrepareForSleep` and
/// `ActiveChanged` carry a boolean, and only `true` counts; logind's `Lock` is the session
/// locking.
const AWAY: &[(Bus, &str, &str)] = &[
    (
        Bus::System,
        "org.freedesktop.login1.Manager",
        "PrepareForSleep",
    ),
    (Bus::System, "org.freedesktop.login1.Session", "Lock"),
    (Bus::Session, "org.freedesktop.ScreenSaver", "ActiveChanged"),
    (Bus::Session, "org.gnome.ScreenSaver", "ActiveChanged"),
    (Bus::Session, "org.mate.ScreenSaver", "ActiveChanged"),
    (Bus::Session, "org.cinnamon.ScreenSaver", "ActiveChanged"),
];

#[derive(Clone, Copy)]
enum Bus {
    System,
    Session,
}

/// Calls `away` (on a thread of its own, once per signal) when the machine is about to sleep,
/// the login session locks or the screensaver starts. Buses that cannot be reached are
/// skipped; returns at once.
pub fn watch_away(away: impl Fn() + Send + Sync + 'static) {
    let away: Arc<dyn Fn() + Send + Sync> = Arc::new(away);
    for &(bus, interface, member) in AWAY {
        let away = away.clone();
        std::thread::spawn(move || {
            let connection = match bus {
                Bus::System => Connection::system(),
                Bus::Session => Connection::session(),
            };
            if let Ok(connection) = connection {
                listen(&connection, interface, member, &*away);
            }
        });
    }
}

fn listen(bus: &Connection, interface: &str, member: &str, away: &dyn Fn()) {
    let Ok(rule) = MatchRule::builder()
        .msg_type(Type::Signal)
        .interface(interface)
        .and_then(|b| b.member(member))
        .map(|b| b.build())
    else {
        return;
    };
    let Ok(signals) = zbus::blocking::MessageIterator::for_match_rule(rule, bus, Some(8)) else {
        return;
    };
    for message in signals.flatten() {
        let gone = member == "Lock" || message.body().deserialize::<bool>().unwrap_or(false);
        if gone {
            away();
        }
    }
}
