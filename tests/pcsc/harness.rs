//! What a case runs in: a private gpg home and state directory, the commands every case
//! uses (cardecrypt, gpg, card import), and a deadline on each command.

use super::*;

pub const IDENT: &str = "FFFE:0000C0DE";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub gnupghome: PathBuf,
}

impl Env {
    pub fn new() -> Env {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Settings of the person running the tests stay out: caches and the holder's runtime
    /// directory are ours, there is no config file, no card or pinentry or unlock default.
    pub fn isolate<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
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
    pub fn shell_env(&self) -> String {
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
    pub fn cardecrypt_command(&self) -> Command {
        let mut cmd = Command::new(cardecrypt_bin());
        self.isolate(&mut cmd);
        cmd
    }

    pub fn cardecrypt(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(
            self.isolate(&mut Command::new(cardecrypt_bin())).args(args),
            stdin,
        )
    }

    /// What `card status --json` says of the time the card stays unlocked.
    pub fn kept_unlocked_seconds(&self) -> Option<u64> {
        let status = self.cardecrypt(&["card", "status", "--json"], b"");
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
        json["kept_unlocked_seconds"].as_u64()
    }

    /// `cardecrypt ARGS --batch --pin-file PIN`: the user PIN from the test's PIN file.
    pub fn cardecrypt_with_pin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let pin = self.path("pin");
        let mut all = args.to_vec();
        all.extend(["--batch", "--pin-file", pin.to_str().expect("utf8")]);
        self.cardecrypt(&all, stdin)
    }

    pub fn gpg(&self, args: &[&str], stdin: &[u8]) -> Output {
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
    pub fn gpg_decrypts_on_card(&self, message: &[u8]) -> Output {
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
    pub fn front_end_decrypt(&self, message: &Path) -> Command {
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
    pub fn gpg_knows_the_card_key(&self) {
        let pubkey = data_dir().join("keys/cv25519.pub.asc");
        assert_ok(
            &self.gpg(&["--import", pubkey.to_str().expect("utf8")], b""),
            "gpg import",
        );
    }

    pub fn import_to_card(&self, algo: &str) {
        self.import_file_to_card(&key_file(algo));
    }

    /// gpg moves the first subkey of `primary` (its encryption key) to the card's decryption
    /// slot, replacing what is there: "key 1" selects the subkey, "2" is the decryption slot,
    /// "y" replaces. The admin PIN is given twice in case gpg asks again; a second line at
    /// the prompt is ignored.
    pub fn gpg_keytocard(&self, primary: &str) -> Output {
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
    pub fn import_file_to_card(&self, key: &Path) -> Output {
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

    pub fn stop_gpg(&self) {
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
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
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
pub const CASE_DEADLINE: Duration = Duration::from_secs(60);

/// Kills a child that runs past its deadline, through its `Child` handle: until the handle
/// reaps it, its PID cannot be reused, so no other process can be hit.
pub struct Watchdog {
    child: std::sync::Arc<std::sync::Mutex<Child>>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    pub fn start(child: Child, limit: Duration) -> Watchdog {
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
    pub fn wait(self) -> std::process::ExitStatus {
        let _ = self.thread.join();
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        c.wait().expect("wait")
    }
}
