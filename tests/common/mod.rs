//! Shared test support: virtual cards as a `CardSource`, fixture keys, messages made with
//! Sequoia, and an `Interaction` that answers from a script.
#![allow(dead_code)]

use std::{collections::VecDeque, io::Write, path::PathBuf, sync::Arc};

use cardecrypt::{
    card::{
        pin::{PinPolicy, PinSource},
        Backend, CardSource,
    },
    decrypt::{self, DecryptOptions, Report},
    ui::Interaction,
    Error,
};
use cardecrypt_vcard::{Config, VirtualCard};
use secrecy::SecretString;
use sequoia_openpgp::{
    cert::prelude::*,
    crypto::KeyPair,
    packet::{one_pass_sig::OnePassSig3, signature::SignatureBuilder, Literal, Packet},
    parse::Parse,
    policy::StandardPolicy,
    serialize::stream::{
        Armorer, Compressor, Encryptor, LiteralWriter, Message, Recipient, Signer,
    },
    serialize::Serialize,
    types::{AEADAlgorithm, CompressionAlgorithm, DataFormat, SignatureType},
};

pub const USER_PIN: &str = "123456";
pub const ADMIN_PIN: &str = "12345678";

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn key_file(algo: &str) -> PathBuf {
    data_dir().join("keys").join(format!("{algo}.sec.asc"))
}

pub fn cert(algo: &str) -> Cert {
    Cert::from_file(key_file(algo)).expect("fixture key")
}

/// Virtual cards, offered the way pcscd offers real ones.
pub struct Cards(pub Vec<Arc<VirtualCard>>);

impl Cards {
    pub fn new(serials: &[u32]) -> Cards {
        Cards(
            serials
                .iter()
                .map(|&serial| {
                    Arc::new(
                        VirtualCard::start(Config {
                            serial,
                            state_dir: None,
                        })
                        .expect("start virtual card"),
                    )
                })
                .collect(),
        )
    }

    pub fn one() -> Cards {
        Cards::new(&[1])
    }

    /// Puts the fixture key `algo` on card `index`.
    pub fn import(&mut self, index: usize, algo: &str) -> Result<(), Error> {
        self.import_cert(index, &cert(algo), None)
    }

    /// Puts the secret keys of `cert` on card `index`, as `cardecrypt card import` does.
    pub fn import_cert(
        &mut self,
        index: usize,
        cert: &Cert,
        passphrase: Option<&sequoia_openpgp::crypto::Password>,
    ) -> Result<(), Error> {
        let planned = cardecrypt::provision::plan(cert, &[], passphrase)?;
        let mut only = Cards(vec![self.0[index].clone()]);
        cardecrypt::cmd::card::import(
            &mut only,
            None,
            &planned,
            SecretString::from(ADMIN_PIN),
            false,
            false,
        )
        .map(|_| ())
    }

    pub fn with_key(algo: &str) -> Cards {
        let mut cards = Cards::one();
        cards.import(0, algo).expect("import fixture key");
        cards
    }

    /// PW1 retry counter as the card reports it.
    pub fn pw1_tries(&self, index: usize) -> u8 {
        let mut card =
            openpgp_card::Card::new(Box::new(self.0[index].backend()) as Backend).expect("open");
        let mut tx = card.transaction().expect("tx");
        tx.pw_status_bytes().expect("pw status").err_count_pw1()
    }
}

impl CardSource for Cards {
    fn backends(&mut self) -> cardecrypt::Result<Vec<(String, Backend)>> {
        Ok(self
            .0
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("Virtual {i}"), Box::new(c.backend()) as Backend))
            .collect())
    }
}

/// Answers PIN prompts from a list; records what was asked.
#[derive(Default)]
pub struct Scripted {
    pub pins: VecDeque<String>,
    pub asked: Vec<(String, u8)>,
    pub touches: usize,
    pub notes: Vec<String>,
}

impl Scripted {
    pub fn with_pin(pin: &str) -> Scripted {
        Scripted {
            pins: VecDeque::from([pin.to_string()]),
            ..Default::default()
        }
    }
}

impl Interaction for Scripted {
    fn user_pin(&mut self, ident: &str, tries_left: u8) -> cardecrypt::Result<SecretString> {
        self.asked.push((ident.to_string(), tries_left));
        self.pins
            .pop_front()
            .map(SecretString::from)
            .ok_or_else(|| Error::PinUnavailable("the test script has no PIN".into()))
    }
    fn touch(&mut self, _ident: &str) {
        self.touches += 1;
    }
    fn note(&mut self, message: &str) {
        self.notes.push(message.to_string());
    }
}

pub fn options(source: PinSource, batch: bool) -> DecryptOptions {
    DecryptOptions {
        card: None,
        pin: PinPolicy {
            source,
            batch,
            allow_last_try: false,
            memory: Default::default(),
        },
        trace: false,
        key_cache: None,
        signer_certs: Vec::new(),
        spool_dir: None,
        unwrap: false,
        progress: None,
        max_plaintext: cardecrypt::engine::memory::DEFAULT_LIMIT,
        show_session_key: false,
        session_key: None,
    }
}

/// Decrypts with the PIN answered by the script.
pub fn decrypt_with(
    cards: &mut Cards,
    ui: &mut Scripted,
    opts: &DecryptOptions,
    message: &[u8],
) -> Result<(Vec<u8>, Report), Error> {
    decrypt::decrypt(&mut &message[..], cards, ui, opts).map(|(p, r)| (p.to_vec(), r))
}

pub fn decrypt_prompting(cards: &mut Cards, message: &[u8]) -> Result<(Vec<u8>, Report), Error> {
    let mut ui = Scripted::with_pin(USER_PIN);
    decrypt_with(cards, &mut ui, &options(PinSource::Ask, false), message)
}

/// How a test message is made.
#[derive(Clone, Copy, Default)]
pub struct Form {
    pub aead: Option<AEADAlgorithm>,
    pub compression: Option<CompressionAlgorithm>,
    pub hidden: bool,
    pub armor: bool,
    pub signed_by: Option<&'static str>,
    /// Signed by this fixture key, but the signature is over other content than the text.
    pub forged_by: Option<&'static str>,
}

/// Encrypts `plaintext` with Sequoia to the encryption keys of `certs`.
pub fn encrypt(certs: &[&Cert], plaintext: &[u8], form: Form) -> Vec<u8> {
    let policy = StandardPolicy::new();
    let mut sink = Vec::new();
    {
        let mut message = Message::new(&mut sink);
        if form.armor {
            message = Armorer::new(message).build().expect("armor");
        }
        let recipients: Vec<Recipient> = certs
            .iter()
            .flat_map(|c| {
                c.keys()
                    .with_policy(&policy, None)
                    .supported()
                    .for_transport_encryption()
                    .map(|ka| {
                        let handle = if form.hidden {
                            None
                        } else {
                            Some(ka.key().key_handle())
                        };
                        Recipient::new(ka.valid_cert().features(), handle, ka.key())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut encryptor = Encryptor::for_recipients(message, recipients);
        if let Some(aead) = form.aead {
            encryptor = encryptor.aead_algo(aead);
        }
        message = encryptor.build().expect("encryptor");
        if let Some(algo) = form.compression {
            message = Compressor::new(message)
                .algo(algo)
                .build()
                .expect("compressor");
        }
        if let Some(signer) = form.signed_by {
            message = Signer::new(message, signing_keypair(signer))
                .expect("signer")
                .build()
                .expect("signer build");
        }
        if let Some(signer) = form.forged_by {
            // One-pass signature, literal data, and a signature over different bytes.
            let mut keypair = signing_keypair(signer);
            let sig = SignatureBuilder::new(SignatureType::Binary)
                .sign_message(&mut keypair, b"what the signer really signed")
                .expect("sign");
            let mut ops = OnePassSig3::try_from(&sig).expect("ops");
            ops.set_last(true);
            let mut literal = Literal::new(DataFormat::Binary);
            literal.set_body(plaintext.to_vec());
            let mut raw = Vec::new();
            for packet in [Packet::from(ops), Packet::from(literal), Packet::from(sig)] {
                packet.serialize(&mut raw).expect("serialize");
            }
            message.write_all(&raw).expect("write");
            message.finalize().expect("finalize");
        } else {
            let mut w = LiteralWriter::new(message).build().expect("literal");
            w.write_all(plaintext).expect("write");
            w.finalize().expect("finalize");
        }
    }
    sink
}

pub fn signing_keypair(algo: &str) -> KeyPair {
    let policy = StandardPolicy::new();
    let cert = cert(algo);
    let key = cert
        .keys()
        .with_policy(&policy, None)
        .secret()
        .for_signing()
        .next()
        .expect("signing key")
        .key()
        .clone();
    key.into_keypair().expect("keypair")
}

/// Runs `cmd` with `stdin` (written from a thread, so a large input cannot deadlock against
/// its output), which must succeed; its standard output.
pub fn piped(cmd: &mut std::process::Command, stdin: &[u8]) -> Vec<u8> {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} not runnable ({e}); scripts/test.sh installs it"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// OpenPGP.js's ESM build: `package` ("openpgp" for 6, "openpgp5" for 5) as scripts/test.sh
/// installs it into target/openpgpjs, or where `env` names it; `None` where it is not
/// installed and the tests are not required to have it.
pub fn openpgpjs(package: &str, env: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
            "target/openpgpjs/node_modules/{package}/dist/node/openpgp.mjs"
        ))
    });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CARDECRYPT_PCSC_TESTS").as_deref() != Ok("require"),
        "{package} (OpenPGP.js) is required here: scripts/test.sh installs it"
    );
    eprintln!("{package} (OpenPGP.js) not installed: skipped (scripts/test.sh installs it)");
    None
}

/// Runs `tests/openpgpjs/SCRIPT ARGS` with node, the OpenPGP.js build named in `env`.
pub fn node_script(
    script: &str,
    env: &str,
    openpgpjs: &std::path::Path,
    args: &[&str],
    stdin: &[u8],
) -> Vec<u8> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/openpgpjs")
        .join(script);
    piped(
        std::process::Command::new("node")
            .arg(script)
            .args(args)
            .env(env, openpgpjs),
        stdin,
    )
}

/// The peer vectors: other implementations' test messages and keys, kept beside the
/// repository (`../shared/peer-vectors`, or `CARDECRYPT_PEER_VECTORS`), never in it. `None`,
/// after one line saying so, where they are absent; CI sets `CARDECRYPT_PEER_TESTS=require`,
/// and there their absence fails.
pub fn peer_corpus(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CARDECRYPT_PEER_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peer-vectors")
        });
    if dir.join("cases.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var("CARDECRYPT_PEER_TESTS").as_deref() == Ok("require") {
        panic!(
            "{test}: the peer vectors are required here but {} has none",
            dir.display()
        );
    }
    println!(
        "{test} skipped: no peer vectors at {} (other projects' test vectors, kept beside the \
         repository in the team's shared folder; set CARDECRYPT_PEER_VECTORS to a copy)",
        dir.display()
    );
    None
}

/// A gpg home with the fixture keys: cv25519 and rsa2048 public, nistp256 secret (signer).
pub struct Gpg {
    pub home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::tempdir().expect("tempdir");
        let gpg = Gpg { home };
        let keys = data_dir().join("keys");
        for f in ["cv25519.pub.asc", "rsa2048.pub.asc", "nistp256.sec.asc"] {
            gpg.run(&["--import", keys.join(f).to_str().expect("utf8")], b"");
        }
        gpg
    }

    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        piped(
            std::process::Command::new("gpg")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--batch", "--no-tty", "--trust-model", "always", "--quiet"])
                .args(args),
            stdin,
        )
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}

/// Peak resident memory (KiB) of `cmd` run under GNU time with the given standard input and
/// output, and its exit status.
pub fn peak_rss_with(
    cmd: &std::process::Command,
    stdin: std::process::Stdio,
    stdout: std::process::Stdio,
) -> (std::process::ExitStatus, u64) {
    let report = tempfile::NamedTempFile::new().expect("temp");
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(cmd.get_program());
    timed.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let status = timed
        .stdin(stdin)
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("/usr/bin/time (apt-get install time)");
    let kib = std::fs::read_to_string(report.path())
        .expect("time report")
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("peak RSS");
    (status, kib)
}
