//! Whole-process tests through the real PC/SC stack: pcscd with vsmartcard's vpcd driver,
//! the `cardecrypt-vcard` binary as the card, the `cardecrypt` binary as users run it, and
//! the real gpg for interop.
//!
//! On libtest-mimic (harness = false): pcscd and the card are set up once, cases run one
//! after another (one card reader, one card), and what was started is stopped through its
//! child handle. If a pcscd is already running with the vpcd reader it is reused and left
//! running. `cargo test --test pcsc -- NAME` filters, `--list` lists.

#[path = "pcsc/brainpool.rs"]
mod brainpool;
#[path = "pcsc/claws.rs"]
mod claws;
mod common;
#[path = "pcsc/desktop.rs"]
mod desktop;
#[path = "pcsc/evolution.rs"]
mod evolution;
#[path = "pcsc/faults.rs"]
mod faults;
#[path = "pcsc/gpg_front.rs"]
mod gpg_front;
#[path = "pcsc/promises.rs"]
mod promises;
#[path = "pcsc/screen.rs"]
mod screen;
#[path = "pcsc/session_keys.rs"]
mod session_keys;
#[path = "pcsc/signing.rs"]
mod signing;
#[path = "pcsc/thunderbird.rs"]
mod thunderbird;

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use brainpool::*;
use cardecrypt::error::exit;
use claws::*;
use common::*;
use desktop::*;
use evolution::*;
use faults::*;
use gpg_front::*;
use promises::*;
use session_keys::*;
use signing::*;
use thunderbird::*;

const VPCD_PORT: u16 = 35963;
/// vpcd's first slot (port 35963); its second, "Virtual PCD 00 01", listens on 35964.
const READER: &str = "Virtual PCD 00 00";
const SECOND_READER: &str = "Virtual PCD 00 01";

/// The vpcd slot the tests' card goes into: the first, or the second when a card (the demo's,
/// say) already sits in the first of a running pcscd.
struct Slot {
    reader: &'static str,
    port: u16,
}

static SLOT: std::sync::OnceLock<Slot> = std::sync::OnceLock::new();

fn slot() -> &'static Slot {
    SLOT.get_or_init(|| Slot {
        reader: READER,
        port: VPCD_PORT,
    })
}

/// The reader the tests' card is in.
fn reader_name() -> &'static str {
    slot().reader
}

/// Another card shares pcscd with the tests' one: their commands name the test card.
fn sharing_pcscd() -> bool {
    slot().port != VPCD_PORT
}

fn bin_dir() -> PathBuf {
    // target/<profile>/deps/pcsc-<hash> -> target/<profile>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn cardecrypt_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cardecrypt"))
}

fn vcard_bin() -> PathBuf {
    let bin = bin_dir().join("cardecrypt-vcard");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p cardecrypt-vcard`)",
        bin.display()
    );
    bin
}

/// pcscd, started by us (and stopped on drop) or found running with the vpcd reader.
struct Pcscd {
    child: Option<Child>,
    _conf: tempfile::TempDir,
}

fn readers() -> Option<Vec<String>> {
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
    fn ensure() -> Pcscd {
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
struct VcardProcess {
    child: Child,
}

fn card_present() -> bool {
    card_present_in(reader_name())
}

fn card_present_in(reader: &str) -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let reader = std::ffi::CString::new(reader).expect("cstring");
    ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .map(|c| c.disconnect(pcsc::Disposition::LeaveCard))
        .is_ok()
}

impl VcardProcess {
    fn start(state: &Path) -> VcardProcess {
        Self::start_with(state, &[])
    }

    /// The card with extra options (`--vanish-at-ins` for fault tests).
    fn start_with(state: &Path, extra: &[&str]) -> VcardProcess {
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

    fn stop(mut self) {
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

const IDENT: &str = "FFFE:0000C0DE";

struct Env {
    dir: tempfile::TempDir,
    state: PathBuf,
    gnupghome: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("card");
        let gnupghome = dir.path().join("gnupg");
        std::fs::create_dir_all(&gnupghome).expect("gnupghome");
        std::fs::set_permissions(&gnupghome, std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::fs::write(
            gnupghome.join("scdaemon.conf"),
            format!("disable-ccid\npcsc-shared\nreader-port {}\n", reader_name()),
        )
        .expect("scdaemon.conf");
        std::fs::write(
            gnupghome.join("gpg-agent.conf"),
            "allow-loopback-pinentry\n",
        )
        .expect("gpg-agent.conf");
        std::fs::write(dir.path().join("pin"), format!("{USER_PIN}\n")).expect("pin");
        std::fs::write(dir.path().join("admin"), format!("{ADMIN_PIN}\n")).expect("admin");
        Env {
            dir,
            state,
            gnupghome,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Settings of the person running the tests stay out: caches and the holder's runtime
    /// directory are ours, there is no config file, no card or pinentry or unlock default.
    fn isolate<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        if sharing_pcscd() {
            cmd.env("CARDECRYPT_CARD", IDENT);
        } else {
            cmd.env_remove("CARDECRYPT_CARD");
        }
        // GNUPGHOME: a scdaemon told of a reset (src/card/scdaemon.rs) is the tests' own.
        cmd.env("XDG_CACHE_HOME", self.path("cache"))
            .env("GNUPGHOME", &self.gnupghome)
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("CARDECRYPT_CONFIG", self.path("no-config"))
            .env_remove("CARDECRYPT_KEEP_UNLOCKED")
            .env_remove("PINENTRY_PROGRAM")
    }

    /// The same isolation as a prefix for shell command lines (tmux, mutt's commands).
    fn shell_env(&self) -> String {
        // env takes its -u options before the assignments.
        let card = if sharing_pcscd() {
            format!("CARDECRYPT_CARD={IDENT}")
        } else {
            "-u CARDECRYPT_CARD".to_string()
        };
        let (unset, set) = if sharing_pcscd() {
            (String::new(), card)
        } else {
            (card, String::new())
        };
        format!(
            "env {unset} -u CARDECRYPT_KEEP_UNLOCKED -u PINENTRY_PROGRAM {set} \
             XDG_CACHE_HOME={} XDG_RUNTIME_DIR={} CARDECRYPT_CONFIG={}",
            self.path("cache").display(),
            self.path("run").display(),
            self.path("no-config").display()
        )
    }

    /// A `cardecrypt` command isolated like every other the tests run.
    fn cardecrypt_command(&self) -> Command {
        let mut cmd = Command::new(cardecrypt_bin());
        self.isolate(&mut cmd);
        cmd
    }

    fn cardecrypt(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(
            self.isolate(&mut Command::new(cardecrypt_bin())).args(args),
            stdin,
        )
    }

    /// What `card status --json` says of the time the card stays unlocked.
    fn kept_unlocked_seconds(&self) -> Option<u64> {
        let status = self.cardecrypt(&["card", "status", "--json"], b"");
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
        json["kept_unlocked_seconds"].as_u64()
    }

    /// `cardecrypt ARGS --batch --pin-file PIN`: the user PIN from the test's PIN file.
    fn cardecrypt_with_pin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let pin = self.path("pin");
        let mut all = args.to_vec();
        all.extend(["--batch", "--pin-file", pin.to_str().expect("utf8")]);
        self.cardecrypt(&all, stdin)
    }

    fn gpg(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(
            Command::new("gpg")
                .arg("--homedir")
                .arg(&self.gnupghome)
                .args(["--batch", "--no-tty", "--trust-model", "always"])
                .args(args),
            stdin,
        )
    }

    /// `gpg -d` of `message` through scdaemon and the card, the user PIN given by loopback.
    fn gpg_decrypts_on_card(&self, message: &[u8]) -> Output {
        self.gpg(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                USER_PIN,
                "-d",
            ],
            message,
        )
    }

    /// `cardecrypt-gpg --decrypt MESSAGE` with the PIN on stdin, as GPGME's loopback gives it.
    fn front_end_decrypt(&self, message: &Path) -> Command {
        let mut front = Command::new(bin_dir().join("cardecrypt-gpg"));
        self.isolate(&mut front)
            .args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
            ])
            .arg("--decrypt")
            .arg(message);
        front
    }

    /// The test gpg home gets the cv25519 card key's certificate, to encrypt to it.
    fn gpg_knows_the_card_key(&self) {
        let pubkey = data_dir().join("keys/cv25519.pub.asc");
        assert_ok(
            &self.gpg(&["--import", pubkey.to_str().expect("utf8")], b""),
            "gpg import",
        );
    }

    fn import_to_card(&self, algo: &str) {
        self.import_file_to_card(&key_file(algo));
    }

    /// gpg moves the first subkey of `primary` (its encryption key) to the card's decryption
    /// slot, replacing what is there: "key 1" selects the subkey, "2" is the decryption slot,
    /// "y" replaces. The admin PIN is given twice in case gpg asks again; a second line at
    /// the prompt is ignored.
    fn gpg_keytocard(&self, primary: &str) -> Output {
        let script = format!("key 1\nkeytocard\n2\ny\n{ADMIN_PIN}\n{ADMIN_PIN}\nsave\n");
        self.gpg(
            &[
                "--command-fd",
                "0",
                "--status-fd",
                "2",
                "--pinentry-mode",
                "loopback",
                "--edit-key",
                primary,
            ],
            script.as_bytes(),
        )
    }

    /// `card import` of a secret key file, replacing what the slots hold; what it said.
    fn import_file_to_card(&self, key: &Path) -> Output {
        let out = self.cardecrypt(
            &[
                "card",
                "import",
                "--batch",
                "--replace",
                "--admin-pin-file",
                self.path("admin").to_str().expect("utf8"),
                key.to_str().expect("utf8"),
            ],
            b"",
        );
        assert_ok(&out, "card import");
        out
    }

    fn stop_gpg(&self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.gnupghome)
            .args(["--kill", "all"])
            .status();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_gpg();
    }
}

/// Runs a command with a deadline, so a hang fails the case instead of the whole run.
fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let streams: [Option<Box<dyn std::io::Read + Send>>; 2] = [
        child.stdout.take().map(|s| Box::new(s) as _),
        child.stderr.take().map(|s| Box::new(s) as _),
    ];
    let readers = streams.map(|stream| {
        std::thread::spawn(move || {
            let mut data = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut data);
            }
            data
        })
    });
    let status = Watchdog::start(child, CASE_DEADLINE).wait();
    let _ = writer.join();
    let [stdout, stderr] = readers.map(|r| r.join().expect("reader"));
    Output {
        status,
        stdout,
        stderr,
    }
}

/// How long one command of a case may run before it is killed.
const CASE_DEADLINE: Duration = Duration::from_secs(60);

/// Kills a child that runs past its deadline, through its `Child` handle: until the handle
/// reaps it, its PID cannot be reused, so no other process can be hit.
struct Watchdog {
    child: std::sync::Arc<std::sync::Mutex<Child>>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    fn start(child: Child, limit: Duration) -> Watchdog {
        let child = std::sync::Arc::new(std::sync::Mutex::new(child));
        let watched = child.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            loop {
                {
                    let mut c = watched.lock().unwrap_or_else(|e| e.into_inner());
                    if !matches!(c.try_wait(), Ok(None)) {
                        return;
                    }
                    if Instant::now() >= deadline {
                        eprintln!("pcsc tests: killing a command that ran over {limit:?}");
                        let _ = c.kill();
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog { child, thread }
    }

    /// Waits for the child (the status is kept by the handle once reaped).
    fn wait(self) -> std::process::ExitStatus {
        let _ = self.thread.join();
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        c.wait().expect("wait")
    }
}

/// A PGP/MIME email from Alice to Bob carrying `armored`, with Message-ID
/// `<SUBJECT@example.org>` (a long boundary: some clients take any line containing a short
/// one for a boundary).
fn pgp_mime_email(subject: &str, armored: &[u8]) -> Vec<u8> {
    let boundary = "pgp-mime-boundary-0000000000000001";
    let mut m = format!(
        "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: {subject}\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <{subject}@example.org>\n\
         MIME-Version: 1.0\nContent-Type: multipart/encrypted; \
         protocol=\"application/pgp-encrypted\"; boundary=\"{boundary}\"\n\n--{boundary}\n\
         Content-Type: application/pgp-encrypted\n\nVersion: 1\n\n--{boundary}\n\
         Content-Type: application/octet-stream; name=\"encrypted.asc\"\n\n"
    )
    .into_bytes();
    m.extend_from_slice(armored);
    m.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    m
}

/// A terminal program in a tmux server of its own (a running server would start it with that
/// server's environment, not ours), 160 by 50; the server is stopped when this is dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    /// Starts `program` through `client` (a `tmux` command carrying the environment).
    fn start(name: &str, client: &mut Command, program: &str) -> Tmux {
        let tmux = Tmux {
            name: format!("{name}-{}", std::process::id()),
        };
        let started = client
            .args(["-L", &tmux.name, "new-session", "-d", "-s", &tmux.name])
            .args(["-x", "160", "-y", "50", program])
            .output()
            .expect("tmux");
        assert!(started.status.success(), "tmux: {}", text(&started.stderr));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.name])
            .args(args)
            .output()
            .expect("tmux")
    }

    fn screen(&self) -> String {
        text(&self.run(&["capture-pane", "-p", "-t", &self.name]).stdout)
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend(keys);
        self.run(&args);
    }

    /// The screen once it shows `what`, or after 15 s.
    fn wait_for(&self, what: &str) -> String {
        let until = Instant::now() + Duration::from_secs(15);
        let mut shown = self.screen();
        while !shown.contains(what) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
            shown = self.screen();
        }
        shown
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A maildir at `dir` holding `message` as its one read message.
fn maildir_with(dir: &Path, message: &[u8]) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("maildir");
    }
    std::fs::write(dir.join("cur/1:2,S"), message).expect("mail");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn assert_fails(out: &Output, code: u8, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(i32::from(code)),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "stdout not empty: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

// ---------------------------------------------------------------- cases

/// A few of the peer vectors (`../shared/peer-vectors`) through the binaries: `card import`
/// of the suite's key (SHA-1 self-signatures and a passphrase among them), then `cardecrypt`:
/// GnuPG 1.4's 3DES message, GnuPG's tag-20 OCB packet in several chunks, an rPGP SEIPD v2,
/// a v6 key (rPGP, NIST P-256) and GnuPG 2.1.5's key with padded secret MPIs.
fn peer_vectors_decrypt_through_the_binaries(env: &Env) {
    use sha2::{Digest, Sha256};
    let Some(dir) = peer_corpus("peer_vectors_decrypt_through_the_binaries") else {
        return;
    };
    let table = std::fs::read_to_string(dir.join("cases.tsv")).expect("peer vectors");
    let wanted = [
        "interop-gnupg-v1-4-11-001",
        "rpgp-gnupg-ocb-multichunk",
        "rpgp-rfc9580-v4nistp-seipdv2",
        "rpgp-rfc9580-v6nistp-seipdv2",
        "interop-gnupg-v2-1-5-001",
    ];
    let mut checked = 0;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if !wanted.contains(&f[0]) {
            continue;
        }
        let passphrase = env.path("passphrase");
        std::fs::write(&passphrase, format!("{}\n", f[4])).expect("passphrase");
        let key = dir.join(f[3]);
        let mut args = vec!["card", "import", "--batch", "--replace", "--admin-pin-file"];
        let admin = env.path("admin");
        args.push(admin.to_str().expect("utf8"));
        if f[4] != "-" {
            args.extend(["--passphrase-file", passphrase.to_str().expect("utf8")]);
        }
        args.push(key.to_str().expect("utf8"));
        assert_ok(&env.cardecrypt(&args, b""), f[0]);
        let message = dir.join(f[2]);
        let out = env.cardecrypt_with_pin(&[message.to_str().expect("utf8")], b"");
        assert_ok(&out, f[0]);
        let sha = format!("{:x}", Sha256::digest(&out.stdout));
        assert!(f[5].split('|').any(|x| x == sha), "{}: sha256 {sha}", f[0]);
        checked += 1;
    }
    assert_eq!(checked, wanted.len());
    env.import_to_card("cv25519");
}

/// Peak resident memory (KiB) of `cmd` run under GNU time, with its exit status.
fn peak_rss(cmd: &Command, stdout: Stdio) -> (std::process::ExitStatus, u64) {
    peak_rss_with(cmd, Stdio::null(), stdout)
}

/// A 200 MiB message, to a file and to a pipe, and through cardecrypt-gpg, in at most 64 MiB
/// (peak RSS of the decrypting process); tampered, it leaves no
/// file and writes nothing; killed with SIGTERM while writing, it leaves nothing behind.
fn large_messages_decrypt_in_bounded_memory(env: &Env) {
    use sha2::{Digest, Sha256};
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    let dir = env.path("bulk");
    std::fs::create_dir_all(&dir).expect("bulk dir");
    let plain = dir.join("plain");
    {
        // Deterministic, incompressible enough: a counter through SHA-256.
        let mut f = std::io::BufWriter::new(std::fs::File::create(&plain).expect("plain"));
        for i in 0u32..(200 << 15) {
            f.write_all(&Sha256::digest(i.to_le_bytes()))
                .expect("write");
        }
        f.flush().expect("flush");
    }
    let expected = Sha256::digest(std::fs::read(&plain).expect("read plain"));
    let message = dir.join("big.gpg");
    let enc = env.gpg(
        &[
            "-z",
            "0",
            "-e",
            "-r",
            "cv25519@cardecrypt.test",
            "-o",
            message.to_str().expect("utf8"),
            plain.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_ok(&enc, "gpg -e 200 MiB");
    std::fs::remove_file(&plain).expect("rm plain");
    let limit_kib = 64 * 1024;
    let pin = env.path("pin");
    let base = |extra: &[&str]| {
        let mut cmd = env.cardecrypt_command();
        cmd.args(["--batch", "--pin-file", pin.to_str().expect("utf8")])
            .args(extra);
        cmd
    };
    // To -o FILE.
    let out = dir.join("out");
    let (status, kib) = peak_rss(
        &base(&[
            "-o",
            out.to_str().expect("utf8"),
            message.to_str().expect("utf8"),
        ]),
        Stdio::null(),
    );
    assert!(status.success(), "-o: {status}");
    assert!(kib <= limit_kib, "-o FILE peak RSS {kib} KiB");
    assert_eq!(
        Sha256::digest(std::fs::read(&out).expect("out")),
        expected,
        "-o content"
    );
    std::fs::remove_file(&out).expect("rm out");
    // To standard output (a file here, so it can be checked): two passes.
    let sink = std::fs::File::create(&out).expect("stdout file");
    let (status, kib) = peak_rss(&base(&[message.to_str().expect("utf8")]), Stdio::from(sink));
    assert!(status.success(), "stdout: {status}");
    assert!(kib <= limit_kib, "stdout peak RSS {kib} KiB");
    assert_eq!(
        Sha256::digest(std::fs::read(&out).expect("out")),
        expected,
        "stdout content"
    );
    std::fs::remove_file(&out).expect("rm out");
    // inspect, outside and inside, streams too: the message is never held whole.
    for extra in [&["inspect"][..], &["inspect", "--decrypt"][..]] {
        let mut cmd = env.cardecrypt_command();
        cmd.args(extra)
            .args(["--batch", "--pin-file", pin.to_str().expect("utf8")])
            .arg(&message);
        let (status, kib) = peak_rss(&cmd, Stdio::null());
        assert!(status.success(), "{extra:?}: {status}");
        assert!(kib <= limit_kib, "{extra:?} peak RSS {kib} KiB");
    }
    // Progress: a line on a terminal (stderr a pty, through script(1)) naming both passes
    // with a bar, rate and time left; none with --status-fd, none when stderr is not one.
    let shown = |extra: &str| {
        let line = format!(
            "{} --batch --pin-file {} {extra} {} > /dev/null",
            cardecrypt_bin().display(),
            pin.display(),
            message.display()
        );
        let mut script = Command::new("script");
        env.isolate(&mut script).args(["-qec", &line, "/dev/null"]);
        let out = run(&mut script, b"");
        assert_ok(&out, "script");
        text(&out.stdout)
    };
    let on_tty = shown("");
    for phase in ["checking [", "writing ["] {
        assert!(on_tty.contains(phase), "no {phase:?} progress: {on_tty:?}");
    }
    assert!(
        on_tty.contains(" MiB/s ") && on_tty.contains(" left"),
        "{on_tty:?}"
    );
    let with_status = shown("--status-fd=2");
    assert!(
        !with_status.contains("checking ["),
        "progress with --status-fd: {with_status:?}"
    );
    let piped_stderr =
        env.cardecrypt_with_pin(&[message.to_str().expect("utf8"), "-o", "/dev/null"], b"");
    assert!(
        !text(&piped_stderr.stderr).contains("checking ["),
        "progress on a pipe: {}",
        text(&piped_stderr.stderr)
    );
    // The gpg front end too (its PIN on stdin as GPGME's loopback gives it): the card and the
    // engine decrypt, the real gpg writes the literal data.
    let front = env.front_end_decrypt(&message);
    let sink = std::fs::File::create(&out).expect("stdout file");
    let pin_in = std::fs::File::open(&pin).expect("pin");
    let (status, kib) = peak_rss_with(&front, Stdio::from(pin_in), Stdio::from(sink));
    assert!(status.success(), "cardecrypt-gpg: {status}");
    assert!(kib <= limit_kib, "cardecrypt-gpg peak RSS {kib} KiB");
    assert_eq!(
        Sha256::digest(std::fs::read(&out).expect("out")),
        expected,
        "cardecrypt-gpg content"
    );
    std::fs::remove_file(&out).expect("rm out");
    // Tampered in the middle: nothing written, no file.
    let mut data = std::fs::read(&message).expect("message");
    let middle = data.len() / 2;
    data[middle] ^= 0x20;
    std::fs::write(&message, &data).expect("tamper");
    drop(data);
    let (status, _) = peak_rss(
        &base(&[
            "-o",
            out.to_str().expect("utf8"),
            message.to_str().expect("utf8"),
        ]),
        Stdio::null(),
    );
    assert_eq!(
        status.code(),
        Some(i32::from(exit::BAD_MESSAGE)),
        "tampered -o"
    );
    assert!(!out.exists(), "tampered -o left a file");
    let sink = std::fs::File::create(&out).expect("stdout file");
    let (status, _) = peak_rss(&base(&[message.to_str().expect("utf8")]), Stdio::from(sink));
    assert_eq!(
        status.code(),
        Some(i32::from(exit::BAD_MESSAGE)),
        "tampered stdout"
    );
    assert_eq!(
        std::fs::metadata(&out).expect("out").len(),
        0,
        "tampered stdout wrote plaintext"
    );
    std::fs::remove_file(&out).expect("rm out");
    // SIGTERM while writing -o: nothing left in the directory.
    let mut data = std::fs::read(&message).expect("message");
    data[middle] ^= 0x20;
    std::fs::write(&message, &data).expect("untamper");
    drop(data);
    let mut child = base(&[
        "-o",
        out.to_str().expect("utf8"),
        message.to_str().expect("utf8"),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    // Not yet reaped, so the PID is still this child's.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n != "big.gpg")
        .collect();
    // If it finished before the signal, the file is complete; otherwise nothing is there.
    if status.success() {
        assert_eq!(Sha256::digest(std::fs::read(&out).expect("out")), expected);
    } else {
        assert!(left.is_empty(), "SIGTERM left {left:?}");
    }
    std::fs::remove_dir_all(&dir).expect("rm bulk");
}

fn decrypts_gpg_messages_for_every_card_algorithm(env: &Env) {
    let plain = b"interop with the real gpg\n";
    for algo in [
        "cv25519", "nistp256", "nistp384", "nistp521", "rsa2048", "rsa3072", "rsa4096",
    ] {
        env.import_to_card(algo);
        let pubkey = data_dir().join(format!("keys/{algo}.pub.asc"));
        assert_ok(
            &env.gpg(&["--import", pubkey.to_str().expect("utf8")], b""),
            "gpg import",
        );
        let recipient = format!("{algo}@cardecrypt.test");
        let enc = env.gpg(&["-e", "-a", "-r", &recipient], plain);
        assert_ok(&enc, "gpg -e");
        let out = env.cardecrypt_with_pin(&[], &enc.stdout);
        assert_ok(&out, algo);
        assert_eq!(out.stdout, plain, "{algo}");
        assert!(out.stderr.is_empty(), "{algo}: {}", text(&out.stderr));
    }
}

fn decrypts_every_gpg_message_form(env: &Env) {
    env.import_to_card("cv25519");
    for algo in ["cv25519", "nistp256"] {
        let pubkey = data_dir().join(format!("keys/{algo}.pub.asc"));
        assert_ok(
            &env.gpg(&["--import", pubkey.to_str().expect("utf8")], b""),
            "gpg import",
        );
    }
    let secret = data_dir().join("keys/nistp256.sec.asc");
    assert_ok(
        &env.gpg(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--import",
                secret.to_str().expect("utf8"),
            ],
            b"",
        ),
        "gpg import signer",
    );
    let plain: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let me = "cv25519@cardecrypt.test";
    let other = "nistp256@cardecrypt.test";
    let forms: Vec<(&str, Vec<&str>)> = vec![
        ("binary", vec!["-e", "-r", me]),
        (
            "uncompressed",
            vec!["-e", "-a", "--compress-algo", "none", "-r", me],
        ),
        ("zip", vec!["-e", "--compress-algo", "zip", "-r", me]),
        ("zlib", vec!["-e", "--compress-algo", "zlib", "-r", me]),
        ("bzip2", vec!["-e", "--compress-algo", "bzip2", "-r", me]),
        ("two recipients", vec!["-e", "-r", other, "-r", me]),
        ("hidden recipient", vec!["-e", "-R", me]),
        (
            "signed",
            vec![
                "-s",
                "-e",
                "-u",
                other,
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "-r",
                me,
            ],
        ),
    ];
    for (name, args) in forms {
        let enc = env.gpg(&args, &plain);
        assert_ok(&enc, name);
        let out = env.cardecrypt_with_pin(&[], &enc.stdout);
        assert_ok(&out, name);
        assert!(out.stdout == plain, "{name}: plaintext differs");
        let err = text(&out.stderr);
        if name != "signed" {
            assert!(err.is_empty(), "{name}: {err}");
            continue;
        }
        assert!(err.contains("NOT checked"), "{name}: {err}");
        // With the signer's certificate the gpg-made signature verifies, in words and in
        // gpg's status lines.
        let signer = data_dir().join("keys/nistp256.pub.asc");
        let out = env.cardecrypt_with_pin(
            &[
                "--status-fd=2",
                "--signer-certs",
                signer.to_str().expect("utf8"),
            ],
            &enc.stdout,
        );
        assert_ok(&out, "signed, with certs");
        assert!(out.stdout == plain, "signed: plaintext differs");
        let err = text(&out.stderr);
        let primary = cert("nistp256").fingerprint().to_hex();
        assert!(
            err.contains(&format!(
                "good signature by Test nistp256 <{other}> ({primary})"
            )),
            "{err}"
        );
        for want in ["[GNUPG:] NEWSIG", "[GNUPG:] GOODSIG ", "[GNUPG:] VALIDSIG "] {
            assert!(err.contains(want), "{want} missing: {err}");
        }
        let validsig = err
            .lines()
            .find(|l| l.starts_with("[GNUPG:] VALIDSIG "))
            .expect("VALIDSIG");
        assert!(validsig.ends_with(&primary), "{validsig}");
    }
}

fn gpg_decrypts_through_a_key_cardecrypt_imported(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    // gpg links the card's keys to the public key it knows.
    assert_ok(&env.gpg(&["--card-status"], b""), "gpg --card-status");
    let enc = env.gpg(&["-e", "-r", "cv25519@cardecrypt.test"], b"both ways\n");
    assert_ok(&enc, "gpg -e");
    let out = env.gpg_decrypts_on_card(&enc.stdout);
    assert_ok(&out, "gpg -d through the card");
    assert_eq!(out.stdout, b"both ways\n");
    env.stop_gpg();
}

fn output_file_is_new_private_and_not_overwritten(env: &Env) {
    env.import_to_card("cv25519");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let expected = std::fs::read(data_dir().join("plain.txt")).expect("plain");
    let out_file = env.path("out.txt");
    let args = ["-o", out_file.to_str().expect("utf8")];
    assert_ok(&env.cardecrypt_with_pin(&args, &message), "decrypt to file");
    assert_eq!(std::fs::read(&out_file).expect("out"), expected);
    let mode = std::fs::metadata(&out_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = env.cardecrypt_with_pin(&args, &message);
    assert_fails(&again, exit::USAGE, "--overwrite");
    let mut with_overwrite = args.to_vec();
    with_overwrite.push("--overwrite");
    assert_ok(
        &env.cardecrypt_with_pin(&with_overwrite, &message),
        "overwrite",
    );

    // A tampered message leaves no output file behind.
    let bad_file = env.path("bad.txt");
    let bad = std::fs::read(data_dir().join("fail_mdc.gpg")).expect("fail_mdc");
    let out = env.cardecrypt_with_pin(&["-o", bad_file.to_str().expect("utf8")], &bad);
    assert_fails(&out, exit::BAD_MESSAGE, "manipulated");
    assert!(!bad_file.exists());

    // An existing device or FIFO is written into (after authentication), never replaced.
    use std::os::unix::fs::FileTypeExt;
    assert_ok(
        &env.cardecrypt_with_pin(&["-o", "/dev/null"], &message),
        "-o /dev/null",
    );
    let null = std::fs::metadata("/dev/null").expect("/dev/null");
    assert!(null.file_type().is_char_device(), "/dev/null was replaced");
    let fifo = env.path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).expect("read fifo"))
    };
    let fifo_arg = fifo.to_str().expect("utf8");
    let out = env.cardecrypt_with_pin(&["-o", fifo_arg, "--overwrite"], &message);
    // Should cardecrypt not have opened the FIFO, open it here so the reader ends.
    let _ = rustix::fs::open(
        &fifo,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    );
    assert_ok(&out, "-o FIFO --overwrite");
    assert_eq!(reader.join().expect("reader"), expected);
    let kind = std::fs::metadata(&fifo).expect("fifo").file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced");
    std::fs::remove_file(&fifo).expect("rm fifo");
}

fn bad_input_corpus_gives_errors_and_no_plaintext(env: &Env) {
    env.import_to_card("cv25519");
    let cases = std::fs::read_to_string(data_dir().join("fail_cases.tsv")).expect("cases");
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let file = data_dir().join(f[0]);
        let out = env.cardecrypt_with_pin(&[file.to_str().expect("utf8")], b"");
        assert_fails(&out, f[1].parse().expect("code"), f[2]);
        assert_eq!(
            text(&out.stderr)
                .lines()
                .filter(|l| !l.contains("hint:"))
                .count(),
            1,
            "{}: one line",
            f[0]
        );
    }
}

fn wrong_pin_costs_one_try_and_says_how_many_are_left(env: &Env) {
    env.import_to_card("cv25519");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let wrong = env.path("wrong");
    std::fs::write(&wrong, "654321\n").expect("write");
    let out = env.cardecrypt(
        &["--batch", "--pin-file", wrong.to_str().expect("utf8")],
        &message,
    );
    assert_fails(&out, exit::PIN, "wrong PIN");
    assert!(
        text(&out.stderr).contains("2 tries left"),
        "{}",
        text(&out.stderr)
    );
    // The right PIN through an inherited descriptor works.
    let out = run(
        env.isolate(&mut Command::new("sh"))
            .arg("-c")
            .arg("exec \"$CARDECRYPT\" --batch --pin-fd 3 3<\"$PIN_FILE\"")
            .env("CARDECRYPT", cardecrypt_bin())
            .env("PIN_FILE", env.path("pin")),
        &message,
    );
    assert_ok(&out, "pin-fd");
}

fn gpg_keytocard_keys_decrypt_with_cardecrypt(env: &Env) {
    // gpg 2.2 keytocard does not switch a slot from ECC to RSA attributes by itself ("Invalid
    // value"); the RSA and NIST paths are covered by `card import` + gpg messages above.
    {
        let algo = "cv25519";
        // Put another key in the slot first, so the key on the card is gpg's doing.
        env.import_to_card("nistp256");
        // A card stub for this key from an earlier case (`gpg --card-status`) would stay in
        // place of the imported secret key: gpg then calls it unusable.
        env.stop_gpg();
        let _ = std::fs::remove_dir_all(env.gnupghome.join("private-keys-v1.d"));
        let secret = data_dir().join(format!("keys/{algo}.sec.asc"));
        let loopback = ["--pinentry-mode", "loopback", "--passphrase", ""];
        let mut args = loopback.to_vec();
        args.extend(["--import", secret.to_str().expect("utf8")]);
        assert_ok(&env.gpg(&args, b""), "gpg import secret");
        let cert = cert(algo);
        let primary = cert.fingerprint().to_hex();
        let out = env.gpg_keytocard(&primary);
        assert_ok(&out, &format!("gpg keytocard {algo}"));
        let gpg_log = text(&out.stderr);
        env.stop_gpg();
        let listed = env.cardecrypt(&["card", "list"], b"");
        let subkey = cert
            .keys()
            .subkeys()
            .next()
            .expect("subkey")
            .key()
            .fingerprint()
            .to_hex();
        let status = env.cardecrypt(&["card", "status"], b"");
        assert!(
            text(&status.stdout).contains(&subkey) && text(&status.stdout).contains("imported"),
            "card status after keytocard: {}",
            text(&status.stdout)
        );
        assert!(
            text(&listed.stdout).contains(&subkey),
            "{algo}: keytocard did not reach the card: {}\ngpg: {gpg_log}",
            text(&listed.stdout)
        );
        let enc = env.gpg(
            &["-e", "-r", &format!("{algo}@cardecrypt.test")],
            b"moved by gpg\n",
        );
        assert_ok(&enc, "gpg -e");
        let out = env.cardecrypt_with_pin(&[], &enc.stdout);
        assert_ok(&out, algo);
        assert_eq!(out.stdout, b"moved by gpg\n");
    }
}

fn decrypts_sequoia_messages_for_every_card_algorithm(env: &Env) {
    use sequoia_openpgp::types::AEADAlgorithm;
    for algo in [
        "cv25519", "nistp256", "nistp384", "nistp521", "rsa2048", "rsa3072", "rsa4096",
    ] {
        env.import_to_card(algo);
        for aead in [
            None,
            Some(AEADAlgorithm::OCB),
            Some(AEADAlgorithm::GCM),
            Some(AEADAlgorithm::EAX),
        ] {
            let plain = format!("sequoia to {algo} with {aead:?}\n");
            let message = encrypt(
                &[&cert(algo)],
                plain.as_bytes(),
                Form {
                    aead,
                    armor: true,
                    ..Form::default()
                },
            );
            let out = env.cardecrypt_with_pin(&[], &message);
            assert_ok(&out, &plain);
            assert_eq!(text(&out.stdout), plain);
        }
    }
}

fn touch_policy_makes_cardecrypt_ask_for_a_touch(env: &Env) {
    use openpgp_card::ocard::data::TouchPolicy;
    env.import_to_card("cv25519");
    set_touch_policy(TouchPolicy::On);
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let out = env.cardecrypt_with_pin(&[], &message);
    set_touch_policy(TouchPolicy::Off);
    assert_ok(&out, "decrypt with touch");
    assert!(
        text(&out.stderr).contains("touch your card"),
        "{}",
        text(&out.stderr)
    );
}

/// Sets the decryption key's touch policy through PC/SC with openpgp-card (issue 3 brings a
/// `card set touch` command).
fn set_touch_policy(policy: openpgp_card::ocard::data::TouchPolicy) {
    use cardecrypt::card::{CardSource, PcscSource};
    use openpgp_card::ocard::KeyType;
    // Kept to the end: when it goes, the card forgets the admin PIN.
    let mut source = PcscSource::default();
    let (_, backend) = source
        .backends()
        .expect("cards")
        .into_iter()
        .find(|(reader, _)| reader == reader_name())
        .expect("the test card");
    let mut card = openpgp_card::Card::new(backend).expect("open");
    let mut tx = card.transaction().expect("tx");
    let mut admin = tx
        .as_admin_card(secrecy::SecretString::from(ADMIN_PIN))
        .expect("admin");
    admin
        .set_touch_policy(KeyType::Decryption, policy)
        .expect("set touch");
    drop(tx);
    drop(card);
    drop(source);
}

fn card_held_exclusively_is_explained(env: &Env) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("context");
    let reader = std::ffi::CString::new(reader_name()).expect("cstring");
    let held = ctx
        .connect(&reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)
        .expect("exclusive connect");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let out = env.cardecrypt(&["--batch"], &message);
    let _ = held.disconnect(pcsc::Disposition::LeaveCard);
    assert_fails(&out, exit::NO_CARD, "is in use");
    assert!(
        text(&out.stderr).contains("gpgconf --kill scdaemon"),
        "{}",
        text(&out.stderr)
    );
}

fn card_generate_makes_a_certificate_gpg_uses(env: &Env) {
    let cert = env.path("generated.asc");
    let _ = std::fs::remove_file(&cert);
    let (pin, admin) = (env.path("pin"), env.path("admin"));
    let out = env.cardecrypt(
        &[
            "card",
            "generate",
            "--batch",
            "--replace",
            "--algo",
            "nistp256",
            "--userid",
            "Made On Card <made@cardecrypt.test>",
            "--pin-file",
            pin.to_str().expect("utf8"),
            "--admin-pin-file",
            admin.to_str().expect("utf8"),
            "-o",
            cert.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_ok(&out, "card generate");
    assert_ok(
        &env.gpg(&["--import", cert.to_str().expect("utf8")], b""),
        "gpg import",
    );
    let status = env.gpg(&["--card-status"], b"");
    assert_ok(&status, "gpg --card-status");
    assert!(
        text(&status.stdout).contains("made@cardecrypt.test"),
        "{}",
        text(&status.stdout)
    );
    let enc = env.gpg(&["-e", "-r", "made@cardecrypt.test"], b"made on the card\n");
    assert_ok(&enc, "gpg -e");
    let dec = env.gpg_decrypts_on_card(&enc.stdout);
    assert_ok(&dec, "gpg -d through the card");
    assert_eq!(dec.stdout, b"made on the card\n");
    env.stop_gpg();
    let out = env.cardecrypt_with_pin(&[], &enc.stdout);
    assert_ok(&out, "cardecrypt");
    assert_eq!(out.stdout, b"made on the card\n");
}

fn status_pins_and_settings_through_the_cli(env: &Env) {
    env.import_to_card("rsa2048");
    let (pin, admin) = (env.path("pin"), env.path("admin"));
    let newpin = env.path("newpin");
    std::fs::write(&newpin, "97531864\n").expect("write");
    let p = |x: &PathBuf| x.to_str().expect("utf8").to_string();
    let out = env.cardecrypt(
        &[
            "card",
            "set",
            "--batch",
            "--admin-pin-file",
            &p(&admin),
            "name",
            "Alice Liddell",
        ],
        b"",
    );
    assert_ok(&out, "card set name");
    let out = env.cardecrypt(
        &[
            "card",
            "pin",
            "change-user",
            "--batch",
            "--pin-file",
            &p(&pin),
            "--new-pin-file",
            &p(&newpin),
        ],
        b"",
    );
    assert_ok(&out, "change-user");
    let message = env.gpg(
        &[
            "--import",
            data_dir()
                .join("keys/rsa2048.pub.asc")
                .to_str()
                .expect("utf8"),
        ],
        b"",
    );
    assert_ok(&message, "gpg import");
    let enc = env.gpg(&["-e", "-r", "rsa2048@cardecrypt.test"], b"new pin\n");
    let old = env.cardecrypt(&["--batch", "--pin-file", &p(&pin)], &enc.stdout);
    assert_fails(&old, exit::PIN, "wrong PIN");
    let ok = env.cardecrypt(&["--batch", "--pin-file", &p(&newpin)], &enc.stdout);
    assert_ok(&ok, "decrypt with the new PIN");
    let back = env.cardecrypt(
        &[
            "card",
            "pin",
            "change-user",
            "--batch",
            "--pin-file",
            &p(&newpin),
            "--new-pin-file",
            &p(&pin),
        ],
        b"",
    );
    assert_ok(&back, "change back");

    // The admin PIN through an inherited descriptor.
    let out = run(
        env.isolate(&mut Command::new("sh"))
            .arg("-c")
            .arg("exec \"$CARDECRYPT\" card set --batch --admin-pin-fd 3 url https://example.org/a.asc 3<\"$ADMIN_FILE\"")
            .env("CARDECRYPT", cardecrypt_bin())
            .env("ADMIN_FILE", &admin),
        b"",
    );
    assert_ok(&out, "card set url with --admin-pin-fd");
    let out = env.cardecrypt(&["card", "status", "--json"], b"");
    assert_ok(&out, "status --json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["ident"], IDENT);
    assert_eq!(json["cardholder"], "Alice Liddell");
    assert_eq!(json["url"], "https://example.org/a.asc");
    assert_eq!(json["slots"][1]["algorithm"], "RSA 2048");
    assert_eq!(json["slots"][1]["origin"], "imported");
    assert_eq!(json["pin"]["user_tries"], 3);
    let text_status = env.cardecrypt(&["card", "status"], b"");
    assert_ok(&text_status, "status");
    assert!(text(&text_status.stdout).contains("Alice Liddell"));
}

fn state_survives_a_restart_of_the_virtual_card(env: &Env, vcard: &mut Option<VcardProcess>) {
    env.import_to_card("nistp384");
    if let Some(card) = vcard.take() {
        card.stop();
    }
    *vcard = Some(VcardProcess::start(&env.state));
    let out = env.cardecrypt(&["card", "list"], b"");
    assert_ok(&out, "card list");
    let subkey = cert("nistp384")
        .keys()
        .subkeys()
        .next()
        .expect("subkey")
        .key()
        .fingerprint()
        .to_hex();
    assert!(text(&out.stdout).contains(&subkey), "{}", text(&out.stdout));
}

fn factory_reset_needs_the_card_named(env: &Env) {
    env.import_to_card("cv25519");
    let out = env.cardecrypt(&["card", "factory-reset", "--batch"], b"");
    assert_eq!(
        out.status.code(),
        Some(exit::USAGE.into()),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains(IDENT));
    let out = env.cardecrypt(
        &[
            "card",
            "factory-reset",
            "--yes-really-wipe",
            "FFFE:00000BAD",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(exit::USAGE.into()));
    let list = env.cardecrypt(&["card", "list"], b"");
    assert!(
        !text(&list.stdout).contains("no decryption key"),
        "not wiped yet"
    );
    let out = env.cardecrypt(&["card", "factory-reset", "--yes-really-wipe", IDENT], b"");
    assert_ok(&out, "factory reset");
    let list = env.cardecrypt(&["card", "list"], b"");
    assert!(
        text(&list.stdout).contains("no decryption key"),
        "{}",
        text(&list.stdout)
    );
}

/// mutt's sample gpg.rc line, with cardecrypt in place of gpg: status lines on stderr, the
/// PIN on stdin (mutt's %p), the message from a file.
fn mutts_gpg_command_line_works(env: &Env) {
    env.import_to_card("cv25519");
    let expected = std::fs::read(data_dir().join("plain.txt")).expect("plain");
    let run_mutt_line = |file: &str, stdin: &[u8]| {
        let msg = data_dir().join(file);
        env.cardecrypt(
            &[
                "--status-fd=2",
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--no-verbose",
                "--quiet",
                "--batch",
                "--output",
                "-",
                "--decrypt",
                msg.to_str().expect("utf8"),
            ],
            stdin,
        )
    };
    let in_order = |err: &str, wanted: &[&str]| {
        let mut rest = err;
        for w in wanted {
            let at = rest
                .find(w)
                .unwrap_or_else(|| panic!("{w} missing or out of order:\n{err}"));
            rest = &rest[at + w.len()..];
        }
    };
    let out = run_mutt_line("base_seipd1.gpg", format!("{USER_PIN}\n").as_bytes());
    assert_ok(&out, "mutt line");
    assert_eq!(out.stdout, expected);
    let err = text(&out.stderr);
    in_order(
        &err,
        &[
            "[GNUPG:] ENC_TO 7BC04DD0BECCEA44 18 0",
            "[GNUPG:] NEED_PASSPHRASE_PIN OPENPGP 2",
            "[GNUPG:] DECRYPTION_KEY F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44",
            "[GNUPG:] BEGIN_DECRYPTION",
            "[GNUPG:] DECRYPTION_INFO 2 9",
            "[GNUPG:] PLAINTEXT 62 ",
            "[GNUPG:] PLAINTEXT_LENGTH 45",
            "[GNUPG:] DECRYPTION_OKAY",
            "[GNUPG:] GOODMDC",
            "[GNUPG:] END_DECRYPTION",
        ],
    );

    let out = run_mutt_line("fail_mdc.gpg", format!("{USER_PIN}\n").as_bytes());
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    in_order(
        &err,
        &[
            "[GNUPG:] BEGIN_DECRYPTION",
            "[GNUPG:] DECRYPTION_FAILED",
            "[GNUPG:] END_DECRYPTION",
        ],
    );
    assert!(!err.contains("DECRYPTION_OKAY"), "{err}");

    let out = run_mutt_line("base_seipd1.gpg", b"000000\n");
    assert!(
        text(&out.stderr).contains("[GNUPG:] SC_OP_FAILURE 2"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("[GNUPG:] DECRYPTION_FAILED"));
    let out = run_mutt_line("fail_not_openpgp.txt", b"");
    assert!(
        text(&out.stderr).contains("[GNUPG:] NODATA 1"),
        "{}",
        text(&out.stderr)
    );
    let out = run_mutt_line("fail_pkesk_keyid.gpg", b"");
    assert!(
        text(&out.stderr).contains("[GNUPG:] NO_SECKEY 7BC04CD0BECCEA44"),
        "{}",
        text(&out.stderr)
    );
}

/// The real neomutt and mutt, in classic mode with cardecrypt as their decrypt and decode
/// commands, show a PGP/MIME and an inline message decrypted, and a tampered one not.
fn mail_clients_show_messages_decrypted(env: &Env) {
    env.import_to_card("cv25519");
    let maildir = env.path("Mail");
    // One folder per message: opening "the" message needs no navigation.
    for folder in ["good", "inline", "tampered"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(folder).join(sub)).expect("maildir");
        }
    }
    let armor = |plain: &[u8]| {
        encrypt(
            &[&cert("cv25519")],
            plain,
            Form {
                armor: true,
                ..Form::default()
            },
        )
    };
    let armored = armor(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe secret body, decrypted by the card.\r\n",
    );
    let mut tampered = armored.clone();
    // Flip a character in the middle of the armored ciphertext.
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let headers = |subject: &str| {
        format!(
            "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: {subject}\n\
             Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <{subject}@example.org>\n\
             MIME-Version: 1.0\n"
        )
    };
    let mut inline = format!(
        "{}Content-Type: text/plain; charset=us-ascii\n\nHi Bob,\n\n",
        headers("inline")
    )
    .into_bytes();
    inline.extend(armor(b"The inline secret, decrypted by the card.\n"));
    inline.extend_from_slice(b"\nAlice\n");
    let messages = [
        ("good", pgp_mime_email("good", &armored)),
        ("inline", inline),
        ("tampered", pgp_mime_email("tampered", &tampered)),
    ];
    for (folder, message) in &messages {
        std::fs::write(maildir.join(folder).join("cur/1:2,S"), message).expect("mail");
    }
    let cmd = format!(
        "{} {} --status-fd=2 --no-verbose --quiet --batch --pin-file {} --output - %f",
        env.shell_env(),
        cardecrypt_bin().display(),
        env.path("pin").display()
    );
    let muttrc = env.path("muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set mbox_type=Maildir\nset folder={m}\nunset crypt_use_gpgme\n\
             set pgp_decrypt_command=\"{cmd}\"\nset pgp_decode_command=\"{cmd}\"\n\
             set pgp_check_gpg_decrypt_status_fd\nset crypt_autopgp=yes\nset pgp_auto_decode=yes\n\
             set header_cache=\"\"\nset message_cachedir=\"\"\nset mailcap_path=/dev/null\n",
            m = maildir.display()
        ),
    )
    .expect("muttrc");
    // How the clients report a failed decryption: neomutt "Could not copy message" or "Could
    // not decrypt PGP message", mutt "[-- Error: decryption failed --]".
    let refused = |shown: &str| shown.contains("Could not") || shown.contains("decryption failed");
    let session = format!("cardecrypt-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .env("HOME", env.dir.path())
            .output()
            .expect("tmux")
    };
    let screen = |client: &str, folder: &str| -> String {
        let _ = tmux(&["kill-session", "-t", &session]);
        let started = tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "50",
            &format!(
                "{client} -n -F {} -f {}",
                muttrc.display(),
                maildir.join(folder).display()
            ),
        ]);
        assert!(started.status.success(), "tmux: {}", text(&started.stderr));
        // Keys sent before the index is drawn are lost.
        let ready = Instant::now() + Duration::from_secs(10);
        while !text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).contains("q:Quit") {
            assert!(Instant::now() < ready, "{client} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        tmux(&["send-keys", "-t", &session, "Enter"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut shown = String::new();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            shown = text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
            if shown.contains("decrypted by the card") || refused(&shown) {
                break;
            }
        }
        tmux(&["send-keys", "-t", &session, "q"]);
        tmux(&["send-keys", "-t", &session, "q"]);
        let _ = tmux(&["kill-session", "-t", &session]);
        shown
    };
    for client in ["neomutt", "mutt"] {
        let good = screen(client, "good");
        assert!(
            good.contains("The secret body, decrypted by the card."),
            "{client} showed:\n{good}"
        );
        let shown = screen(client, "inline");
        assert!(
            shown.contains("The inline secret, decrypted by the card."),
            "{client} showed:\n{shown}"
        );
        assert!(shown.contains("Hi Bob,"), "{client} showed:\n{shown}");
        let bad = screen(client, "tampered");
        assert!(
            !bad.contains("The secret body"),
            "{client} showed a tampered message:\n{bad}"
        );
        assert!(refused(&bad), "{client} showed:\n{bad}");
    }
}

/// `cardecrypt mail` on whole messages encrypted by gpg: protected headers restored, an
/// unencrypted message passed through with exit 9, a tampered one refused with nothing out.
fn cardecrypt_mail_decrypts_whole_messages(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    let payload = "Content-Type: text/plain; charset=utf-8; hp=\"cipher\"\r\n\
                   Subject: Budget 2027\r\nHP-Outer: Subject: [...]\r\n\r\n\
                   The numbers are attached in spirit.\r\n";
    let enc = env.gpg(
        &["-e", "-a", "-r", "cv25519@cardecrypt.test"],
        payload.as_bytes(),
    );
    assert_ok(&enc, "gpg encrypt");
    let message = format!(
        "Subject: [...]\nFrom: a@example.org\nMIME-Version: 1.0\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\n\n\
         --x\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n\
         --x\nContent-Type: application/octet-stream\n\n{}\n--x--\n",
        text(&enc.stdout)
    );
    let out = env.cardecrypt_with_pin(&["mail"], message.as_bytes());
    assert_ok(&out, "cardecrypt mail");
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with("Subject: Budget 2027\nFrom: a@example.org\nMIME-Version: 1.0\n"),
        "{shown}"
    );
    assert!(
        shown.ends_with("\n\nThe numbers are attached in spirit.\n"),
        "{shown}"
    );
    assert!(!shown.contains("[...]"), "{shown}");

    let plain = b"Subject: hi\n\nnot secret\n";
    let out = env.cardecrypt(&["mail", "--batch"], plain);
    assert_eq!(
        out.status.code(),
        Some(exit::NOT_ENCRYPTED.into()),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.stdout, plain);
    assert!(text(&out.stderr).contains("not encrypted"));

    let mut tampered = message.clone().into_bytes();
    let at = message.find("-----BEGIN PGP MESSAGE-----").expect("armor") + 120;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let out = env.cardecrypt_with_pin(&["mail"], &tampered);
    assert_fails(&out, exit::BAD_MESSAGE, "cannot be decrypted safely");
}

/// gpg front ends that answer `GET_HIDDEN passphrase.enter` with the PIN on their command
/// descriptor: Emacs EasyPG (`--command-fd 0 --pinentry-mode loopback --status-fd 1`, output
/// to a file) and Evolution (no pinentry mode, ciphertext on stdin, command fd 4, status on
/// stderr, plaintext on stdout).
fn gpg_front_ends_send_the_pin_on_the_command_fd(env: &Env) {
    env.import_to_card("cv25519");
    let message = data_dir().join("base_seipd1.gpg");
    let expected = std::fs::read(data_dir().join("plain.txt")).expect("plain");

    let out = env.path("easypg.out");
    let mut easypg = Command::new(cardecrypt_bin());
    easypg
        .args([
            "--no-tty",
            "--status-fd",
            "1",
            "--yes",
            "--enable-progress-filter",
        ])
        .args(["--command-fd", "0", "--output"])
        .arg(&out)
        .args(["--pinentry-mode", "loopback", "--decrypt", "--"])
        .arg(&message);
    let (status, _) = answer_get_hidden(env, &mut easypg, true);
    assert_eq!(std::fs::read(&out).expect("out"), expected, "{status}");

    // sh moves the command pipe to fd 4 and puts the ciphertext on stdin.
    let mut evolution = Command::new("sh");
    evolution
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 4<&0 0<\"$CIPHERTEXT\"")
        .arg(cardecrypt_bin())
        .args([
            "--verbose",
            "--no-secmem-warning",
            "--no-greeting",
            "--no-tty",
        ])
        .args([
            "--status-fd=2",
            "--command-fd=4",
            "--decrypt",
            "--output",
            "-",
        ])
        .env("CIPHERTEXT", &message);
    let (status, plaintext) = answer_get_hidden(env, &mut evolution, false);
    assert_eq!(plaintext, expected, "{status}");
}

/// Runs a decrypt with the card locked, answers its PIN request on stdin the way gpg front
/// ends do, and checks the order of the status lines. Status lines are read from stdout
/// or stderr (`status_on_stdout`); returns them and what the other stream carried.
fn answer_get_hidden(env: &Env, cmd: &mut Command, status_on_stdout: bool) -> (String, Vec<u8>) {
    use std::io::{BufRead, BufReader, Read};
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    std::thread::sleep(Duration::from_millis(1500)); // pcscd powers the card off
    let mut child = env
        .isolate(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let (status_stream, mut other): (Box<dyn Read + Send>, Box<dyn Read + Send>) =
        if status_on_stdout {
            (
                Box::new(child.stdout.take().expect("stdout")),
                Box::new(child.stderr.take().expect("stderr")),
            )
        } else {
            (
                Box::new(child.stderr.take().expect("stderr")),
                Box::new(child.stdout.take().expect("stdout")),
            )
        };
    let watchdog = Watchdog::start(child, CASE_DEADLINE);
    let other = std::thread::spawn(move || {
        let mut data = Vec::new();
        let _ = other.read_to_end(&mut data);
        data
    });
    let mut status: Vec<String> = Vec::new();
    for line in BufReader::new(status_stream).lines() {
        let line = line.expect("status line");
        if line == "[GNUPG:] GET_HIDDEN passphrase.enter" {
            // EasyPG answers only once NEED_PASSPHRASE_PIN said what is asked for.
            assert!(
                status
                    .iter()
                    .any(|l| l.starts_with("[GNUPG:] NEED_PASSPHRASE_PIN")),
                "{status:?}"
            );
            stdin
                .write_all(format!("{USER_PIN}\n").as_bytes())
                .expect("send PIN");
        }
        if line.starts_with("[GNUPG:] ") {
            status.push(line);
        }
    }
    let other = other.join().expect("reader");
    let done = watchdog.wait();
    let status = status.join("\n");
    assert!(
        done.success(),
        "{status}\n{}",
        String::from_utf8_lossy(&other)
    );
    let order = [
        "NEED_PASSPHRASE_PIN",
        "GET_HIDDEN passphrase.enter",
        "GOT_IT",
        "DECRYPTION_OKAY",
    ];
    let positions: Vec<Option<usize>> = order.iter().map(|l| status.find(l)).collect();
    assert!(
        positions.iter().all(Option::is_some) && positions.is_sorted(),
        "{status}"
    );
    assert_eq!(status.matches("NEED_PASSPHRASE_PIN").count(), 1, "{status}");
    (status, other)
}

/// The config file the README documents: `signer-certs`, `keep-unlocked` and `pinentry`
/// from it are used, and a setting it does not know is refused in one line.
fn config_file_sets_signer_certs_keep_unlocked_and_pinentry(env: &Env) {
    env.import_to_card("cv25519");
    let config = env.path("config");
    let with_config = |args: &[&str], stdin: &[u8]| {
        run(
            env.isolate(&mut Command::new(cardecrypt_bin()))
                .env("CARDECRYPT_CONFIG", &config)
                .args(args),
            stdin,
        )
    };
    let signer = data_dir().join("keys/nistp256.pub.asc");
    std::fs::write(
        &config,
        format!(
            "# test\nsigner-certs = {}\nkeep-unlocked = 60s\npinentry = /nonexistent/pinentry\n",
            signer.display()
        ),
    )
    .expect("config");
    let signed = encrypt(
        &[&cert("cv25519")],
        b"signed text\n",
        Form {
            signed_by: Some("nistp256"),
            ..Form::default()
        },
    );
    let pin = env.path("pin");
    let out = with_config(
        &["--batch", "--pin-file", pin.to_str().expect("utf8")],
        &signed,
    );
    assert_ok(&out, "decrypt with the config file");
    assert!(
        text(&out.stderr).contains("good signature by"),
        "{}",
        text(&out.stderr)
    );
    let left = env.kept_unlocked_seconds();
    assert!(left.is_some_and(|s| s > 0 && s <= 60), "{left:?}");
    let out = env.cardecrypt_with_pin(&[], &signed);
    assert_ok(&out, "decrypt without the config file");
    assert!(
        text(&out.stderr).contains("NOT checked"),
        "{}",
        text(&out.stderr)
    );

    // The card locked, the pinentry the config names is the one asked.
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    std::thread::sleep(Duration::from_millis(1500)); // pcscd powers the card off
    let out = with_config(&[], &signed);
    assert_fails(&out, exit::PIN, "/nonexistent/pinentry");

    std::fs::write(&config, "colour = red\n").expect("config");
    let out = with_config(&["--batch"], &signed);
    assert_fails(&out, exit::USAGE, "unknown setting `colour`");
}

/// With stdin taken (as a mail client does), the PIN is asked through the real
/// pinentry-curses on the terminal, and the PIN typed there unlocks the card.
fn pinentry_asks_when_stdin_is_taken(env: &Env) {
    env.import_to_card("cv25519");
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    std::thread::sleep(Duration::from_millis(1500)); // pcscd powers the card off
    let message = data_dir().join("base_seipd1.gpg");
    let (out, err, flag) = (env.path("pe.out"), env.path("pe.err"), env.path("pe.done"));
    let script = format!(
        "{env} {bin} < {msg} > {out} 2> {err}; echo $? > {flag}",
        env = env.shell_env(),
        bin = cardecrypt_bin().display(),
        msg = message.display(),
        out = out.display(),
        err = err.display(),
        flag = flag.display()
    );
    let session = format!("cardecrypt-pinentry-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .env_remove("PINENTRY_PROGRAM")
            .output()
            .expect("tmux")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "100",
        "-y",
        "30",
        "sh",
        "-c",
        &script,
    ]);
    assert!(started.status.success(), "tmux: {}", text(&started.stderr));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut screen = String::new();
    while Instant::now() < deadline && !screen.contains("tries left") {
        std::thread::sleep(Duration::from_millis(200));
        screen = text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
    }
    let asked = screen.contains("tries left") && screen.contains("FFFE:0000C0DE");
    if asked {
        tmux(&["send-keys", "-t", &session, "-l", USER_PIN]);
        tmux(&["send-keys", "-t", &session, "Enter"]);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !flag.exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(asked, "no pinentry dialog:\n{screen}");
    let code = std::fs::read_to_string(&flag).unwrap_or_default();
    let err = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(code.trim(), "0", "stderr: {err}");
    let expected = std::fs::read(data_dir().join("plain.txt")).expect("plain");
    assert_eq!(std::fs::read(&out).expect("out"), expected);
}

fn keep_unlocked_spares_the_pin_until_lock(env: &Env) {
    env.import_to_card("cv25519");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let pause = || std::thread::sleep(Duration::from_millis(1500)); // > pcscd's power-off delay
    let out = env.cardecrypt_with_pin(&["--keep-unlocked", "60s"], &message);
    assert_ok(&out, "decrypt and keep unlocked");
    pause();
    let out = env.cardecrypt(&["--batch"], &message);
    assert_ok(&out, "second decrypt without a PIN");
    let left = env.kept_unlocked_seconds();
    assert!(left.is_some_and(|s| s > 0 && s <= 60), "{left:?}");
    // The holder does not keep other programs from the card. (A gpg home of its own: gpg
    // remembers the card's keys, which would confuse the other gpg tests.)
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scdaemon.conf"),
        format!("disable-ccid\npcsc-shared\nreader-port {}\n", reader_name()),
    )
    .expect("conf");
    let status = run(
        Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .args(["--batch", "--card-status"]),
        b"",
    );
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home.path())
        .args(["--kill", "all"])
        .status();
    assert_ok(&status, "gpg --card-status while held");
    assert!(
        text(&status.stdout).contains("0000C0DE"),
        "{}",
        text(&status.stdout)
    );
    let out = env.cardecrypt(&["lock"], b"");
    assert_ok(&out, "lock");
    pause();
    let out = env.cardecrypt(&["--batch"], &message);
    assert_fails(&out, exit::PIN, "needs its PIN");
}

/// The `--help` examples that need no secret and no file of the user's run as written (the
/// example card ident replaced by the virtual card's) and succeed; every other example is
/// parsed by the unit tests.
fn help_examples_without_secrets_run(env: &Env) {
    env.import_to_card("cv25519");
    let runnable = |argv: &[String]| {
        matches!(
            argv.get(1..3),
            Some([a, b]) if a == "card" && (b == "list" || b == "status")
        ) || matches!(argv.get(1).map(String::as_str), Some("lock"))
    };
    let mut ran = Vec::new();
    for example in cardecrypt::cli::help_examples() {
        let argv: Vec<String> = cardecrypt::cli::example_argv(&example)
            .into_iter()
            .map(|w| w.replace("FFFE:00000001", IDENT))
            .collect();
        if !runnable(&argv) {
            continue;
        }
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let out = env.cardecrypt(&args, b"");
        assert!(
            out.status.success(),
            "`{example}`: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        ran.push(example);
    }
    assert!(ran.len() >= 4, "too few examples ran: {ran:?}");
}

fn doctor_explains_the_setup(env: &Env) {
    env.import_to_card("cv25519");
    let home = tempfile::tempdir().expect("tempdir");
    let rc = home.path().join(".neomuttrc");
    std::fs::write(
        &rc,
        "set pgp_decrypt_command=\"cardecrypt --status-fd=2 %f\"\n",
    )
    .expect("rc");
    let doctor = || {
        run(
            env.isolate(&mut Command::new(cardecrypt_bin()))
                .arg("doctor")
                .env("HOME", home.path()),
            b"",
        )
    };
    let out = doctor();
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::OTHER.into()), "{report}");
    assert!(report.contains("ok    pcscd is running"), "{report}");
    assert!(
        report.contains(&format!(
            "card {IDENT} in \"{}\": decryption key F871B553",
            reader_name()
        )),
        "{report}"
    );
    assert!(
        report.contains("FAIL  ") && report.contains("GPGME"),
        "{report}"
    );
    assert!(
        report.contains("fix: add `unset crypt_use_gpgme`"),
        "{report}"
    );
    std::fs::write(
        &rc,
        "unset crypt_use_gpgme\nset pgp_decrypt_command=\"cardecrypt --status-fd=2 %f\"\n",
    )
    .expect("rc");
    let out = doctor();
    assert_ok(&out, "doctor with a good setup");
    assert!(!text(&out.stdout).contains("FAIL"), "{}", text(&out.stdout));
}

fn card_list_shows_ident_reader_and_key(env: &Env) {
    env.import_to_card("cv25519");
    let out = env.cardecrypt(&["card", "list"], b"");
    assert_ok(&out, "card list");
    let line = text(&out.stdout);
    assert!(line.contains(IDENT), "{line}");
    assert!(line.contains(reader_name()), "{line}");
    assert!(
        line.contains("F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44"),
        "{line}"
    );
}

fn no_card_and_no_pcscd_are_explained(env: &Env, vcard: &mut Option<VcardProcess>) {
    if let Some(card) = vcard.take() {
        card.stop();
    }
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let out = env.cardecrypt(&["--batch"], &message);
    if sharing_pcscd() {
        // The other card is still there: the named test card is what is missing.
        assert_fails(&out, exit::NO_CARD, &format!("card {IDENT} not found"));
    } else {
        assert_fails(&out, exit::NO_CARD, "no OpenPGP card found");
    }
    *vcard = Some(VcardProcess::start(&env.state));

    let out = run(
        Command::new(cardecrypt_bin())
            .arg("--batch")
            .env("PCSCLITE_CSOCK_NAME", env.path("no-such-socket")),
        &message,
    );
    assert_fails(&out, exit::NO_CARD, "pcscd");
}

/// What every case shares: the gpg home and state directory, and the virtual card process
/// (a case may restart or stop it).
struct Shared {
    env: Env,
    vcard: Option<VcardProcess>,
}

type CaseFn = fn(&Env, &mut Option<VcardProcess>);

/// Each case once, in order, named by its function: `env(f)` takes the environment,
/// `card(f)` also the virtual card process.
macro_rules! cases {
    ($($kind:ident($case:ident)),* $(,)?) => {{
        let cases: Vec<(&'static str, CaseFn)> = vec![$(cases!(@one $kind $case)),*];
        cases
    }};
    (@one env $case:ident) => { (stringify!($case), |env, _| $case(env)) };
    (@one card $case:ident) => { (stringify!($case), $case) };
}

/// Makes the test card forget every PIN (VERIFY P1=FF), as a card losing power would.
fn lock_the_card() {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return;
    };
    let reader = std::ffi::CString::new(reader_name()).expect("reader name");
    let Ok(card) = ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) else {
        return;
    };
    let mut buf = [0u8; 300];
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01,
    ];
    if card.transmit(&select, &mut buf).is_ok() {
        for pin in [0x81, 0x82, 0x83] {
            let _ = card.transmit(&[0x00, 0x20, 0xFF, pin], &mut buf);
        }
    }
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
}

/// Whether this machine can run the tier: pcscd and vpcd installed, or a pcscd with the vpcd
/// reader already running. `scripts/test.sh` and CI set CARDECRYPT_PCSC_TESTS=require, so
/// there a missing part fails instead of skipping.
fn pcsc_tier_possible() -> Result<(), String> {
    if readers().is_some_and(|r| r.iter().any(|r| r == READER)) {
        return Ok(());
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
            || Path::new("/usr/sbin").join(name).is_file()
    };
    if !on_path("pcscd") {
        return Err("pcscd is not installed".into());
    }
    if !Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists() {
        return Err("vsmartcard-vpcd is not installed".into());
    }
    Ok(())
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    if let Err(why) = pcsc_tier_possible() {
        if std::env::var("CARDECRYPT_PCSC_TESTS").as_deref() == Ok("require") {
            panic!("the pcsc tier is required here, but {why}: run scripts/test.sh");
        }
        println!("pcsc tier skipped: {why} (scripts/test.sh installs it and runs the tier)");
        return;
    }
    let cases = cases![
        env(peer_vectors_decrypt_through_the_binaries),
        env(large_messages_decrypt_in_bounded_memory),
        env(cardecrypt_mail_decrypts_whole_messages),
        env(pinentry_asks_when_stdin_is_taken),
        env(doctor_explains_the_setup),
        env(help_examples_without_secrets_run),
        env(keep_unlocked_spares_the_pin_until_lock),
        env(a_shared_connection_does_not_keep_our_pin),
        env(a_pin_another_program_sent_is_left_alone),
        env(scdaemon_sharing_the_card_does_not_keep_our_pin),
        env(scdaemon_keeps_working_beside_us),
        env(one_pin_for_every_part_of_an_email),
        env(a_kept_session_extends_one_holder),
        env(a_decompression_bomb_stays_in_bounded_memory),
        card(a_card_that_cannot_forget_is_reset),
        card(a_touch_is_announced_on_the_desktop),
        env(the_holder_lets_go_when_the_user_goes_away),
        env(mail_clients_show_messages_decrypted),
        env(mutts_gpg_command_line_works),
        env(card_generate_makes_a_certificate_gpg_uses),
        env(status_pins_and_settings_through_the_cli),
        env(card_held_exclusively_is_explained),
        env(card_list_shows_ident_reader_and_key),
        env(decrypts_gpg_messages_for_every_card_algorithm),
        env(decrypts_every_gpg_message_form),
        env(decrypts_sequoia_messages_for_every_card_algorithm),
        env(gpg_keytocard_keys_decrypt_with_cardecrypt),
        env(brainpool_keys_from_gpg_import_and_decrypt),
        env(gpg_decrypts_through_a_key_cardecrypt_imported),
        env(output_file_is_new_private_and_not_overwritten),
        env(bad_input_corpus_gives_errors_and_no_plaintext),
        env(wrong_pin_costs_one_try_and_says_how_many_are_left),
        env(touch_policy_makes_cardecrypt_ask_for_a_touch),
        env(gpg_front_ends_send_the_pin_on_the_command_fd),
        env(config_file_sets_signer_certs_keep_unlocked_and_pinentry),
        env(gpgme_decrypts_card_messages_through_cardecrypt_gpg),
        env(cardecrypt_gpg_forwards_everything_else),
        env(gpgme_never_hears_success_for_what_gpg_could_not_read),
        env(mail_clients_decrypt_through_cardecrypt_gpg),
        env(notmuch_stashes_session_keys_and_shows_without_the_card),
        env(the_command_line_shows_and_takes_session_keys),
        env(status_and_plaintext_on_one_descriptor_come_in_gpgs_order),
        env(aerc_shows_a_card_message),
        env(gpgme_signs_with_the_card_in_every_mode),
        env(gpgme_encrypts_and_signs_with_the_card),
        env(neomutt_sends_mail_signed_by_the_card),
        env(thunderbird_reads_and_signs_with_the_card),
        env(claws_mail_shows_a_card_message),
        env(evolution_decrypts_a_card_message_and_refuses_a_tampered_one),
        env(planted_holder_state_moves_nothing),
        env(full_filesystem_and_closed_stdout_leave_nothing),
        env(eight_decrypts_at_once_share_the_card),
        env(gpg_and_cardecrypt_share_the_card_at_once),
        card(card_pulled_out_during_the_decrypt),
        env(mail_names_an_old_cipher),
        env(inspect_names_the_card_and_describes_the_inside),
        env(the_holder_keeps_no_descriptor_of_the_caller),
        card(state_survives_a_restart_of_the_virtual_card),
        env(factory_reset_needs_the_card_named),
        // Last: it stops the virtual card.
        card(no_card_and_no_pcscd_are_explained),
    ];
    let listing = args.list;
    let pcscd = (!listing).then(Pcscd::ensure);
    let shared = std::sync::Arc::new(std::sync::Mutex::new(None::<Shared>));
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let shared = shared.clone();
            libtest_mimic::Trial::test(name, move || {
                let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
                let state = guard.get_or_insert_with(|| {
                    let env = Env::new();
                    let vcard = Some(VcardProcess::start(&env.state));
                    Shared { env, vcard }
                });
                // Each case starts with no gpg agent and a locked card: a PIN scdaemon verified
                // outlives scdaemon until the card loses power, and would spare the next case
                // a PIN it must be asked for.
                state.env.stop_gpg();
                lock_the_card();
                catch_unwind(AssertUnwindSafe(|| case(&state.env, &mut state.vcard))).map_err(
                    |panic| {
                        let text = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into());
                        libtest_mimic::Failed::from(text)
                    },
                )
            })
        })
        .collect();
    // One card, one reader: the cases run one after another.
    let mut args = args;
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    // Stop what was started, in order: the card, the gpg agents, then pcscd.
    drop(shared.lock().unwrap_or_else(|e| e.into_inner()).take());
    drop(pcscd);
    conclusion.exit();
}
