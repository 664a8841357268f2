//! cardecrypt-gpg with the real clients: GPGME (Debian's python3-gpg) with the engine set to
//! the front end and found through the `gpgconf` link; forwarding to the real gpg.
//!
//! The gpg home these use has `scdaemon-program /bin/false`: its agent cannot reach the
//! card, so a card message that decrypts was decrypted by cardecrypt. The PIN comes from a
//! scripted pinentry that records that it was asked.

use std::ffi::OsString;

use super::*;

const SECRET: &str = "only the card opens this\n";
pub(crate) const CARD_FPR: &str = "F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44";

/// GPGME through Python: `MODE MESSAGE FRONT_END HOME`; prints one JSON object.
const GPGME_SCRIPT: &str = r#"
import gpg, json, sys
from gpg import gpgme
mode, message, front_end, home = sys.argv[1:5]
ctx = gpg.Context()
if mode != "default":
    ctx.set_engine_info(gpg.constants.protocol.OpenPGP, file_name=front_end, home_dir=home)
out = {"engine": ctx.engine_info.file_name, "version": ctx.engine_info.version}
data = open(message, "rb").read()
try:
    if mode == "unwrap":
        # Thunderbird's call: gpgme_op_decrypt_ext with GPGME_DECRYPT_UNWRAP.
        cipher, plain = gpg.Data(data), gpg.Data()
        err = gpgme.gpgme_op_decrypt_ext(ctx.wrapped, gpg.constants.DECRYPT_UNWRAP,
                                         cipher, plain)
        gpg.errors.errorcheck(err)
        plain.seek(0, 0)
        out["unwrapped"] = plain.read().hex()
    else:
        plain, result, verify = ctx.decrypt(data, verify=True)
        out["plain"] = plain.decode()
        out["recipients"] = [r.keyid for r in result.recipients]
        out["signatures"] = [[s.fpr, s.status, s.validity] for s in verify.signatures]
except gpg.errors.GPGMEError as e:
    out["error"] = str(e)
print(json.dumps(out))
"#;

/// A gpg home that cannot use the card, with the card's certificate, a software signing
/// and encryption key, the front end's links and a scripted pinentry.
pub(crate) struct FrontEnd {
    home: PathBuf,
    bin: PathBuf,
    pinentry: PathBuf,
    asked: PathBuf,
    pub(crate) signer: String,
}

impl FrontEnd {
    /// A fresh one per case: `name` keeps their homes apart.
    pub(crate) fn new(env: &Env, name: &str) -> FrontEnd {
        let home = env.path(&format!("{name}-gnupg"));
        let bin = env.path(&format!("{name}-bin"));
        std::fs::create_dir_all(&home).expect("home");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::write(
            home.join("gpg-agent.conf"),
            "scdaemon-program /bin/false\nallow-loopback-pinentry\n",
        )
        .expect("agent conf");
        let asked = env.path(&format!("{name}-pinentry-asked"));
        let pinentry = env.path(&format!("{name}-pinentry"));
        std::fs::write(
            &pinentry,
            format!(
                "#!/bin/sh\necho 'OK ready'\nwhile read -r cmd rest; do\n  case \"$cmd\" in\n    \
                 GETPIN) echo asked >> {asked}; echo 'D {USER_PIN}'; echo OK;;\n    \
                 BYE) echo OK; exit 0;;\n    *) echo OK;;\n  esac\ndone\n",
                asked = asked.display()
            ),
        )
        .expect("pinentry");
        std::fs::set_permissions(&pinentry, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut front = FrontEnd {
            home,
            bin,
            pinentry,
            asked,
            signer: String::new(),
        };
        let card_cert = data_dir().join("keys/cv25519.pub.asc");
        assert_ok(
            &front.gpg(&["--import", card_cert.to_str().expect("utf8")], b""),
            "import the card's certificate",
        );
        let sender = [
            "--quick-gen-key",
            "Sender <sender@example.org>",
            "ed25519",
            "sign",
        ];
        assert_ok(&front.gpg(&sender, b""), "software key");
        let signer = front.fingerprint("sender@example.org");
        assert_ok(
            &front.gpg(
                &["--quick-add-key", &signer, "cv25519", "encr", "never"],
                b"",
            ),
            "software encryption subkey",
        );
        let out = env.cardecrypt(
            &[
                "gpg-shim",
                "install",
                "--dir",
                front.bin.to_str().expect("utf8"),
            ],
            b"",
        );
        assert_ok(&out, "gpg-shim install");
        front.signer = signer;
        front
    }

    /// The real gpg in this home.
    pub(crate) fn gpg(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(
            Command::new("/usr/bin/gpg")
                .arg("--homedir")
                .arg(&self.home)
                .args(["--batch", "--no-tty", "--passphrase", "", "--pinentry-mode"])
                .args(["loopback", "--trust-model", "always"])
                .args(args),
            stdin,
        )
    }

    /// The gpg home the clients use.
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    /// The directory with the front end's `gpg` and `gpgconf` links.
    pub(crate) fn bin(&self) -> &Path {
        &self.bin
    }

    pub(crate) fn fingerprint(&self, uid: &str) -> String {
        let out = self.gpg(&["--with-colons", "--list-keys", uid], b"");
        text(&out.stdout)
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_string())
            })
            .expect("fingerprint")
    }

    /// PATH with the front end's links first.
    fn path_var(&self) -> OsString {
        let mut dirs = vec![self.bin.clone()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).expect("PATH")
    }

    /// A client's environment: this home, the scripted pinentry, the links first on PATH.
    pub(crate) fn client<'c>(&self, env: &Env, cmd: &'c mut Command) -> &'c mut Command {
        env.isolate(cmd)
            .env("GNUPGHOME", &self.home)
            .env("PINENTRY_PROGRAM", &self.pinentry)
            .env("PATH", self.path_var())
            .env_remove("CARDECRYPT_REAL_GPG")
    }

    /// GPGME in MODE on MESSAGE, as JSON.
    fn gpgme(&self, env: &Env, mode: &str, message: &Path) -> serde_json::Value {
        self.gpgme_with(env, mode, message, &[])
    }

    /// The same with more environment for the client.
    fn gpgme_with(
        &self,
        env: &Env,
        mode: &str,
        message: &Path,
        vars: &[(&str, &str)],
    ) -> serde_json::Value {
        let script = env.path("gpgme.py");
        std::fs::write(&script, GPGME_SCRIPT).expect("script");
        let front_end = bin_dir().join("cardecrypt-gpg");
        let out = run(
            self.client(env, &mut Command::new("/usr/bin/python3"))
                .envs(vars.iter().copied())
                .arg(&script)
                .arg(mode)
                .arg(message)
                .arg(&front_end)
                .arg(&self.home),
            b"",
        );
        assert!(
            out.status.success(),
            "python3-gpg: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
    }

    /// `cardecrypt-gpg --decrypt MESSAGE` as a client runs it, its status lines on stdout.
    fn status_of(&self, env: &Env, message: &Path) -> (Output, String) {
        let out = run(
            self.client(env, &mut Command::new(bin_dir().join("cardecrypt-gpg")))
                .args(["--batch", "--status-fd", "1", "--decrypt"])
                .arg(message),
            b"",
        );
        let status = text(&out.stdout);
        (out, status)
    }

    pub(crate) fn pinentry_asks(&self) -> usize {
        std::fs::read_to_string(&self.asked)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

/// The card's PIN state is forgotten: the next decrypt must ask for it.
pub(crate) fn lock_card(env: &Env) {
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
}

pub fn gpgme_decrypts_card_messages_through_cardecrypt_gpg(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "gpgme");
    let signed = front.gpg(
        &[
            "-a",
            "-r",
            CARD_FPR,
            "-u",
            &front.signer,
            "--sign",
            "--encrypt",
        ],
        SECRET.as_bytes(),
    );
    assert_ok(&signed, "encrypt and sign to the card");
    let message = env.path("front-end-signed.asc");
    std::fs::write(&message, &signed.stdout).expect("message");
    lock_card(env);

    // The engine set to the front end, as Thunderbird's alternative_gpg_path does.
    let result = front.gpgme(env, "engine", &message);
    assert_eq!(result["plain"], SECRET, "{result}");
    assert_eq!(result["recipients"][0], &CARD_FPR[24..], "{result}");
    let sig = &result["signatures"][0];
    assert_eq!(sig[0], front.signer.as_str(), "{result}");
    assert_eq!(
        sig[1], 0,
        "signature status is not GPG_ERR_NO_ERROR: {result}"
    );
    assert!(
        front.pinentry_asks() >= 1,
        "the PIN did not come from the pinentry"
    );
    assert!(
        result["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("2.")),
        "{result}"
    );

    // Thunderbird's call: --unwrap; the real gpg turns the packet stream into the text.
    lock_card(env);
    let result = front.gpgme(env, "unwrap", &message);
    let stream = hex_decode(result["unwrapped"].as_str().expect("unwrapped"));
    let plain = front.gpg(&["--decrypt"], &stream);
    assert_ok(&plain, "real gpg on the unwrapped stream");
    assert_eq!(text(&plain.stdout), SECRET);

    // keep-unlocked applies as for cardecrypt: one PIN for two decrypts.
    lock_card(env);
    let before = front.pinentry_asks();
    let keep = [("CARDECRYPT_KEEP_UNLOCKED", "60s")];
    for _ in 0..2 {
        let result = front.gpgme_with(env, "engine", &message, &keep);
        assert_eq!(result["plain"], SECRET, "{result}");
    }
    assert_eq!(
        front.pinentry_asks(),
        before + 1,
        "kept unlocked, asked once"
    );
    lock_card(env);

    // A default context: GPGME asks gpgconf (the link) where gpg is.
    let result = front.gpgme(env, "default", &message);
    assert!(
        result["engine"]
            .as_str()
            .is_some_and(|e| e.ends_with("cardecrypt-gpg")),
        "GPGME did not find the front end through gpgconf: {result}"
    );
    assert_eq!(result["plain"], SECRET, "{result}");

    // Tampered: an error, and no plaintext.
    let binary = front.gpg(&["-r", CARD_FPR, "--encrypt"], SECRET.as_bytes());
    assert_ok(&binary, "encrypt");
    let mut tampered = binary.stdout.clone();
    let at = tampered.len() - 30;
    tampered[at] ^= 0x01;
    let tampered_path = env.path("front-end-tampered.gpg");
    std::fs::write(&tampered_path, &tampered).expect("write");
    let result = front.gpgme(env, "engine", &tampered_path);
    // "Decryption failed" (our DECRYPTION_FAILED), not "No secret key" (the real gpg).
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("Decryption failed")),
        "{result}"
    );
    assert!(result.get("plain").is_none(), "{result}");
}

pub fn cardecrypt_gpg_forwards_everything_else(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "forward");
    // Key listings equal the real gpg's.
    let listing = |program: &Path| {
        run(
            front
                .client(env, &mut Command::new(program))
                .args(["--with-colons", "--list-keys"]),
            b"",
        )
    };
    // The trust database line says when it was last checked: not the front end's business.
    let keys = |o: &Output| -> Vec<String> {
        text(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("tru:"))
            .map(str::to_string)
            .collect()
    };
    let through = listing(&front.bin.join("gpg"));
    let real = listing(Path::new("/usr/bin/gpg"));
    assert_ok(&through, "--list-keys through the front end");
    assert_eq!(keys(&through), keys(&real));
    assert!(text(&through.stdout).contains(&front.signer));

    // A message to the software key: the real gpg decrypts it, through GPGME too.
    let soft = front.gpg(&["-a", "-r", &front.signer, "--encrypt"], SECRET.as_bytes());
    assert_ok(&soft, "encrypt to the software key");
    let message = env.path("front-end-soft.asc");
    std::fs::write(&message, &soft.stdout).expect("write");
    let result = front.gpgme(env, "engine", &message);
    assert_eq!(result["plain"], SECRET, "{result}");
    let direct = run(
        front
            .client(env, &mut Command::new(front.bin.join("gpg")))
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(["--decrypt"]),
        &soft.stdout,
    );
    assert_ok(
        &direct,
        "software-key message on stdin through the front end",
    );
    assert_eq!(text(&direct.stdout), SECRET);

    // --version claims the real gpg's version first and names cardecrypt after.
    let version = run(
        front
            .client(env, &mut Command::new(front.bin.join("gpg")))
            .arg("--version"),
        b"",
    );
    let real_version = run(Command::new("/usr/bin/gpg").arg("--version"), b"");
    let first = |o: &Output| {
        text(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(first(&version), first(&real_version));
    assert!(text(&version.stdout).contains("cardecrypt"));

    // doctor tells that GPGME finds the front end through the gpgconf link.
    let doctor = run(
        front
            .client(env, &mut Command::new(cardecrypt_bin()))
            .arg("doctor"),
        b"",
    );
    let report = text(&doctor.stdout);
    assert!(
        report.contains("ok    gpg on PATH is cardecrypt-gpg")
            && report.contains(
                "ok    GPGME (Thunderbird, neomutt, notmuch, KMail, Claws) runs cardecrypt-gpg"
            ),
        "{report}"
    );

    // remove takes the links away, and only them.
    let out = env.cardecrypt(
        &[
            "gpg-shim",
            "remove",
            "--dir",
            front.bin.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_ok(&out, "gpg-shim remove");
    assert!(!front.bin.join("gpg").exists() && !front.bin.join("gpgconf").exists());
    std::fs::write(front.bin.join("gpg"), "not ours").expect("write");
    let out = env.cardecrypt(
        &[
            "gpg-shim",
            "install",
            "--dir",
            front.bin.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_fails(&out, exit::USAGE, "is not cardecrypt's");
    assert_eq!(
        std::fs::read_to_string(front.bin.join("gpg")).expect("read"),
        "not ours"
    );
}

impl Drop for FrontEnd {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "all"])
            .status();
    }
}

pub(crate) fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The clients that find gpg themselves: neomutt in its default GPGME mode (on PATH, through
/// gpgconf), notmuch (GMime + GPGME) and Emacs EasyPG (`epg-gpg-program`, loopback PIN).
pub fn mail_clients_decrypt_through_cardecrypt_gpg(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "clients");
    let body =
        "Content-Type: text/plain; charset=utf-8\n\nThe GPGME secret, decrypted by the card.\n";
    let encrypted = front.gpg(&["-a", "-r", CARD_FPR, "--encrypt"], body.as_bytes());
    assert_ok(&encrypted, "encrypt");
    let maildir = env.path("clients-Mail");
    maildir_with(&maildir, &pgp_mime_email("gpgme", &encrypted.stdout));
    let secret = "The GPGME secret, decrypted by the card.";

    // notmuch: `notmuch show --decrypt=true`.
    lock_card(env);
    let config = env.path("notmuch-config");
    std::fs::write(
        &config,
        format!(
            "[database]\npath={}\n[user]\nname=Bob\nprimary_email=bob@example.org\n\
             [new]\ntags=inbox;\n",
            maildir.display()
        ),
    )
    .expect("notmuch config");
    let notmuch = |args: &[&str]| {
        run(
            front
                .client(env, &mut Command::new("notmuch"))
                .env("NOTMUCH_CONFIG", &config)
                .args(args),
            b"",
        )
    };
    assert_ok(&notmuch(&["new"]), "notmuch new");
    let shown = notmuch(&["show", "--decrypt=true", "id:gpgme@example.org"]);
    assert_ok(&shown, "notmuch show --decrypt=true");
    assert!(
        text(&shown.stdout).contains(secret),
        "notmuch showed:\n{}\n{}",
        text(&shown.stdout),
        text(&shown.stderr)
    );
    assert!(
        front.pinentry_asks() >= 1,
        "the PIN did not come from the pinentry"
    );

    // Emacs EasyPG in batch, the PIN from its passphrase callback (gpg's loopback).
    lock_card(env);
    let armored = env.path("clients-message.asc");
    std::fs::write(&armored, &encrypted.stdout).expect("write");
    let elisp = format!(
        "(progn (require 'epg) (setq epg-gpg-program \"{gpg}\") \
         (let ((ctx (epg-make-context 'OpenPGP))) \
           (epg-context-set-passphrase-callback ctx (cons (lambda (&rest _) \
             (copy-sequence \"{USER_PIN}\")) nil)) \
           (princ (epg-decrypt-string ctx (with-temp-buffer \
             (insert-file-contents-literally \"{file}\") (buffer-string))))))",
        gpg = front.bin.join("gpg").display(),
        file = armored.display()
    );
    let emacs = run(
        front
            .client(env, &mut Command::new("emacs"))
            .args(["--batch", "-Q", "--eval", &elisp]),
        b"",
    );
    assert!(
        text(&emacs.stdout).contains(secret),
        "EasyPG: {}\n{}",
        text(&emacs.stdout),
        text(&emacs.stderr)
    );

    // neomutt as Debian installs it: GPGME mode, gpg found on PATH through gpgconf.
    lock_card(env);
    let muttrc = env.path("clients-muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set mbox_type=Maildir\nset folder={m}\nset crypt_use_gpgme=yes\n\
             set crypt_autopgp=yes\nset header_cache=\"\"\nset message_cachedir=\"\"\n\
             set mailcap_path=/dev/null\n",
            m = maildir.display()
        ),
    )
    .expect("muttrc");
    let session = format!("cardecrypt-gpgme-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .env("HOME", env.dir.path())
            .output()
            .expect("tmux")
    };
    let _ = tmux(&["kill-session", "-t", &session]);
    let launch = format!(
        "{} GNUPGHOME={} PINENTRY_PROGRAM={} PATH={} neomutt -n -F {} -f {}",
        env.shell_env(),
        front.home.display(),
        front.pinentry.display(),
        front.path_var().to_string_lossy(),
        muttrc.display(),
        maildir.display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "50",
        &launch,
    ]);
    assert!(started.status.success(), "tmux: {}", text(&started.stderr));
    let capture = || text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
    let ready = Instant::now() + Duration::from_secs(10);
    while !capture().contains("q:Quit") {
        assert!(
            Instant::now() < ready,
            "neomutt did not start:\n{}",
            capture()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["send-keys", "-t", &session, "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut shown = String::new();
    while Instant::now() < deadline && !shown.contains(secret) {
        std::thread::sleep(Duration::from_millis(300));
        shown = capture();
    }
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["send-keys", "-t", &session, "q"]);
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(shown.contains(secret), "neomutt (GPGME) showed:\n{shown}");
}

/// GPGME hears success only when the whole job succeeded: content the real gpg cannot read
/// (an encrypted message inside the card's, as `gpg --no-literal` makes) is a failure, while
/// a signature whose key is not at hand (gpg's exit code 2 alone) still decrypts.
pub fn gpgme_never_hears_success_for_what_gpg_could_not_read(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "verdict");
    let inner = front.gpg(&["-r", CARD_FPR, "--encrypt"], SECRET.as_bytes());
    assert_ok(&inner, "inner message");
    let outer = front.gpg(
        &["-r", CARD_FPR, "--no-literal", "--encrypt"],
        &inner.stdout,
    );
    assert_ok(&outer, "outer message, no literal packet");
    let nested = env.path("verdict-nested.gpg");
    std::fs::write(&nested, &outer.stdout).expect("write");
    let result = front.gpgme(env, "engine", &nested);
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("Decryption failed")),
        "GPGME was told the nested message decrypted: {result}"
    );
    assert!(result.get("plain").is_none(), "{result}");
    // The same through the command line: DECRYPTION_FAILED, never DECRYPTION_OKAY.
    let (out, status) = front.status_of(env, &nested);
    assert!(status.contains("[GNUPG:] DECRYPTION_FAILED"), "{status}");
    assert!(!status.contains("DECRYPTION_OKAY"), "{status}");
    assert_eq!(out.status.code(), Some(2), "{status}");

    // Signed by a key this home no longer has: decrypted, the signature "no public key".
    let signed = front.gpg(
        &["-r", CARD_FPR, "-u", &front.signer, "--sign", "--encrypt"],
        SECRET.as_bytes(),
    );
    assert_ok(&signed, "signed message");
    let message = env.path("verdict-signed.gpg");
    std::fs::write(&message, &signed.stdout).expect("write");
    let delete = ["--yes", "--delete-secret-and-public-key", &front.signer];
    assert_ok(&front.gpg(&delete, b""), "forget the signer");
    // GPGME reports this as it does for the real gpg alone: the plaintext, no error.
    let result = front.gpgme(env, "engine", &message);
    assert_eq!(result["plain"], SECRET, "{result}");
    assert!(result.get("error").is_none(), "{result}");
    let (_, status) = front.status_of(env, &message);
    assert!(status.contains("[GNUPG:] NO_PUBKEY"), "{status}");
    assert!(status.contains("[GNUPG:] DECRYPTION_OKAY"), "{status}");
}
