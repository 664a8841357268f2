//! A GPGME client's gpg home for the cardecrypt-gpg cases: it cannot reach the card (its
//! agent's scdaemon is /bin/false), holds the card's certificate and a software key, has the
//! front end's links and a pinentry that records that it was asked; and the GPGME script
//! (Debian's python3-gpg) the cases drive it with.

use std::ffi::OsString;

use super::*;

/// The fingerprint of the card's key (the cv25519 fixture) in every front end's keyring.
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
    pub(crate) home: PathBuf,
    pub(crate) bin: PathBuf,
    pub(crate) pinentry: PathBuf,
    pub(crate) asked: PathBuf,
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
    pub(crate) fn path_var(&self) -> OsString {
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
    pub(crate) fn gpgme(&self, env: &Env, mode: &str, message: &Path) -> serde_json::Value {
        self.gpgme_with(env, mode, message, &[])
    }

    /// The same with more environment for the client.
    pub(crate) fn gpgme_with(
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
    pub(crate) fn status_of(&self, env: &Env, message: &Path) -> (Output, String) {
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
