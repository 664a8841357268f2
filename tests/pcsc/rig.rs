//! The PC/SC rig: pcscd with vpcd's reader, started or reused, and the virtual card as a
//! process of its own in one of vpcd's slots.

use super::*;

pub const VPCD_PORT: u16 = 35963;
/// vpcd's first slot (port 35963); its second, "Virtual PCD 00 01", listens on 35964.
pub const READER: &str = "Virtual PCD 00 00";
pub const SECOND_READER: &str = "Virtual PCD 00 01";

/// The vpcd slot the tests' card goes into: the first, or the second when a card (the demo's,
/// say) already sits in the first of a running pcscd.
pub struct Slot {
    reader: &'static str,
    port: u16,
}

pub static SLOT: std::sync::OnceLock<Slot> = std::sync::OnceLock::new();

pub fn slot() -> &'static Slot {
    SLOT.get_or_init(|| Slot {
        reader: READER,
        port: VPCD_PORT,
    })
}

/// The reader the tests' card is in.
pub fn reader_name() -> &'static str {
    slot().reader
}

/// Another card shares pcscd with the tests' one: their commands name the test card.
pub fn sharing_pcscd() -> bool {
    slot().port != VPCD_PORT
}

pub fn bin_dir() -> PathBuf {
    // target/<profile>/deps/pcsc-<hash> -> target/<profile>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn cardecrypt_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cardecrypt"))
}

pub fn vcard_bin() -> PathBuf {
    let bin = bin_dir().join("cardecrypt-vcard");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p cardecrypt-vcard`)",
        bin.display()
    );
    bin
}

/// pcscd, started by us (and stopped on drop) or found running with the vpcd reader.
pub struct Pcscd {
    child: Option<Child>,
    _conf: tempfile::TempDir,
}

pub fn readers() -> Option<Vec<String>> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).ok()?;
    let readers = ctx.list_readers_owned().unwrap_or_default();
    Some(
        readers
            .iter()
            .map(|r| r.to_string_lossy().into_owned())
            .collect(),
    )
}

impl Pcscd {
    pub fn ensure() -> Pcscd {
        let conf = tempfile::tempdir().expect("tempdir");
        if let Some(readers) = readers() {
            assert!(
                readers.iter().any(|r| r == READER),
                "a pcscd without the vpcd reader is running (readers: {readers:?}); stop it \
                 (`systemctl stop pcscd.socket pcscd` or `pkill -x pcscd`) or install \
                 vsmartcard-vpcd and restart it"
            );
            if card_present_in(READER) {
                // The demo's card, most likely: the second slot is ours. A test card of a
                // run that just ended may take a moment to leave it.
                let until = Instant::now() + Duration::from_secs(5);
                while card_present_in(SECOND_READER) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(100));
                }
                assert!(
                    readers.iter().any(|r| r == SECOND_READER) && !card_present_in(SECOND_READER),
                    "both vpcd slots hold a card; stop one (`scripts/demo.sh stop`)"
                );
                let _ = SLOT.set(Slot {
                    reader: SECOND_READER,
                    port: VPCD_PORT + 1,
                });
                eprintln!(
                    "pcsc tests: a card is in \"{READER}\"; the test card goes into \
                     \"{SECOND_READER}\", and every command names it"
                );
            }
            eprintln!("pcsc tests: reusing the running pcscd");
            return Pcscd {
                child: None,
                _conf: conf,
            };
        }
        let driver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
        assert!(
            Path::new(driver).exists(),
            "{driver} missing: install vsmartcard-vpcd"
        );
        std::fs::write(
            conf.path().join("vpcd"),
            format!(
                "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:0x{VPCD_PORT:04X}\n\
                 LIBPATH {driver}\nCHANNELID 0x{VPCD_PORT:04X}\n"
            ),
        )
        .expect("write reader conf");
        let child = Command::new("pcscd")
            .args(["--foreground", "--config"])
            .arg(conf.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pcscd (is it installed? apt-get install pcscd)");
        eprintln!("pcsc tests: started pcscd, PID {}", child.id());
        let started = Instant::now();
        while !readers().is_some_and(|r| r.iter().any(|r| r == READER)) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pcscd did not show the vpcd reader"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Pcscd {
            child: Some(child),
            _conf: conf,
        }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            eprintln!("pcsc tests: stopping pcscd, PID {}", child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The virtual card attached to vpcd, as a separate process.
pub struct VcardProcess {
    child: Child,
}

pub fn card_present() -> bool {
    card_present_in(reader_name())
}

pub fn card_present_in(reader: &str) -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let reader = std::ffi::CString::new(reader).expect("cstring");
    ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .map(|c| c.disconnect(pcsc::Disposition::LeaveCard))
        .is_ok()
}

impl VcardProcess {
    pub fn start(state: &Path) -> VcardProcess {
        Self::start_with(state, &[])
    }

    /// The card with extra options (`--vanish-at-ins` for fault tests).
    pub fn start_with(state: &Path, extra: &[&str]) -> VcardProcess {
        let child = Command::new(vcard_bin())
            .arg("--state")
            .arg(state)
            .args(["--serial", "0000C0DE", "--port", &slot().port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cardecrypt-vcard");
        let started = Instant::now();
        while !card_present() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the virtual card did not appear in pcscd"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        VcardProcess { child }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = Instant::now();
        while card_present() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for VcardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
