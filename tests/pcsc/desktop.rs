//! The desktop over real dbus-daemons standing in for the system and session buses: the
//! unlock holder lets go on logind's `PrepareForSleep(true)` and `Lock` and on the
//! screensaver's `ActiveChanged(true)`, not on `false`; a card that waits for a touch is
//! announced with a notification once the wait passes a short delay, and the notification
//! is closed when the card answered.

use std::{
    collections::HashMap,
    io::BufRead,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::*;

/// A private dbus-daemon, stopped when dropped.
pub(crate) struct Bus {
    daemon: Child,
    pub(crate) address: String,
}

impl Bus {
    pub(crate) fn start() -> Bus {
        Bus::start_with(&[])
    }

    /// The same, with `vars` in the environment of the services it starts.
    pub(crate) fn start_with(vars: &[(&str, &Path)]) -> Bus {
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (scripts/test.sh installs it)");
        let mut address = String::new();
        std::io::BufReader::new(daemon.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("address");
        Bus {
            daemon,
            address: address.trim().to_string(),
        }
    }

    /// Emits `member` (interface.member) from `path` with `args` (dbus-send's form).
    fn signal(&self, path: &str, member: &str, args: &[&str]) {
        let sent = Command::new("dbus-send")
            .arg(format!("--bus={}", self.address))
            .args(["--type=signal", path, member])
            .args(args)
            .status()
            .expect("dbus-send");
        assert!(sent.success(), "dbus-send {member}");
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn base_message() -> Vec<u8> {
    std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base vector")
}

pub fn the_holder_lets_go_when_the_user_goes_away(env: &Env) {
    env.import_to_card("cv25519");
    let (system, session) = (Bus::start(), Bus::start());
    let message = base_message();
    let pin = env.path("pin");
    let keep = |what: &str| {
        let out = run(
            env.isolate(&mut Command::new(cardecrypt_bin()))
                .env("DBUS_SYSTEM_BUS_ADDRESS", &system.address)
                .env("DBUS_SESSION_BUS_ADDRESS", &session.address)
                .args(["--batch", "--keep-unlocked", "60s", "--pin-file"])
                .arg(&pin),
            &message,
        );
        assert_ok(&out, what);
        assert!(env.kept_unlocked_seconds().is_some(), "{what}: kept");
    };
    let cases: [(&Bus, &str, &str, &[&str]); 4] = [
        (
            &system,
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager.PrepareForSleep",
            &["boolean:true"],
        ),
        (
            &system,
            "/org/freedesktop/login1/session/_31",
            "org.freedesktop.login1.Session.Lock",
            &[],
        ),
        (
            &session,
            "/org/freedesktop/ScreenSaver",
            "org.freedesktop.ScreenSaver.ActiveChanged",
            &["boolean:true"],
        ),
        (
            &session,
            "/org/gnome/ScreenSaver",
            "org.gnome.ScreenSaver.ActiveChanged",
            &["boolean:true"],
        ),
    ];
    for (bus, path, member, args) in cases {
        keep(member);
        // Waking up and the screensaver ending are no reason to lock: said for a second,
        // long enough for the holder to be listening.
        for _ in 0..10 {
            system.signal(
                "/org/freedesktop/login1",
                "org.freedesktop.login1.Manager.PrepareForSleep",
                &["boolean:false"],
            );
            session.signal(
                "/org/freedesktop/ScreenSaver",
                "org.freedesktop.ScreenSaver.ActiveChanged",
                &["boolean:false"],
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            env.kept_unlocked_seconds().is_some(),
            "{member}: false kept it"
        );
        let until = Instant::now() + Duration::from_secs(5);
        while env.kept_unlocked_seconds().is_some() && Instant::now() < until {
            bus.signal(path, member, args);
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            env.kept_unlocked_seconds().is_none(),
            "{member}: still kept"
        );
        let batch = env.cardecrypt(&["--batch"], &message);
        assert_fails(&batch, exit::PIN, "needs its PIN");
    }
}

/// What a notification service was asked: (method, summary or id, when).
type Calls = Arc<Mutex<Vec<(String, String, Instant)>>>;

/// A notification service on the private session bus that records what it is asked.
struct Notifications {
    calls: Calls,
    next: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        _app: String,
        _replaces: u32,
        _icon: String,
        summary: String,
        _body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _timeout: i32,
    ) -> u32 {
        self.next += 1;
        let mut calls = self.calls.lock().expect("calls");
        calls.push(("Notify".into(), summary, Instant::now()));
        self.next
    }

    fn close_notification(&mut self, id: u32) {
        let mut calls = self.calls.lock().expect("calls");
        calls.push(("CloseNotification".into(), id.to_string(), Instant::now()));
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "recorder".into(),
            "cardecrypt tests".into(),
            "1".into(),
            "1.2".into(),
        )
    }
}

pub fn a_touch_is_announced_on_the_desktop(env: &Env, vcard: &mut Option<VcardProcess>) {
    use openpgp_card::ocard::data::TouchPolicy;
    env.import_to_card("cv25519");
    set_touch_policy(TouchPolicy::On);
    let session = Bus::start();
    let calls: Calls = Arc::default();
    let _service = zbus::blocking::connection::Builder::address(session.address.as_str())
        .and_then(|b| b.name("org.freedesktop.Notifications"))
        .and_then(|b| {
            b.serve_at(
                "/org/freedesktop/Notifications",
                Notifications {
                    calls: calls.clone(),
                    next: 0,
                },
            )
        })
        .and_then(|b| b.build())
        .expect("notification service");
    let message = base_message();
    let decrypt = || {
        let started = Instant::now();
        let out = run(
            env.isolate(&mut Command::new(cardecrypt_bin()))
                .env("DBUS_SESSION_BUS_ADDRESS", &session.address)
                .args(["--batch", "--pin-file"])
                .arg(env.path("pin")),
            &message,
        );
        assert_ok(&out, "decrypt with a touch");
        started
    };
    let restart = |vcard: &mut Option<VcardProcess>, args: &[&str]| {
        if let Some(card) = vcard.take() {
            card.stop();
        }
        *vcard = Some(VcardProcess::start_with(&env.state, args));
    };

    // The owner takes 1.5 s to touch: the desktop says so, and stops saying it.
    restart(vcard, &["--touch-delay-ms", "1500"]);
    let started = decrypt();
    let seen = calls.lock().expect("calls").clone();
    restart(vcard, &[]);
    // A quick touch: nothing shown.
    decrypt();
    let quick = calls.lock().expect("calls").len();
    set_touch_policy(TouchPolicy::Off);

    assert_eq!(seen.len(), 2, "{seen:?}");
    let (notify, close) = (&seen[0], &seen[1]);
    assert_eq!(
        (notify.0.as_str(), notify.1.as_str()),
        ("Notify", "Touch your OpenPGP card")
    );
    assert!(
        notify.2 - started >= Duration::from_millis(600),
        "shown after the delay, not at once"
    );
    assert_eq!(
        (close.0.as_str(), close.1.as_str()),
        ("CloseNotification", "1")
    );
    assert_eq!(quick, 2, "a quick touch is not announced");
}
