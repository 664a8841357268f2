//! The real Thunderbird (Debian's package) under Xvfb, driven through its Marionette remote
//! protocol in chrome context, with cardecrypt-gpg as its external GnuPG
//! (`mail.openpgp.alternative_gpg_path`) and no scdaemon: a PGP/MIME card message opened as
//! a user opens an .eml file is shown decrypted and a tampered one is not; a message written
//! in the compose window with Sign on, from an identity whose key is the card's (an external
//! GnuPG key), reaches the Outbox signed; Thunderbird's encrypt+sign call (`GPGME.sign`)
//! signs too. The real gpg verifies every signature.

use std::{
    io::{BufRead, BufReader, Read},
    net::TcpStream,
};

use serde_json::{json, Value};

use super::*;
use crate::{
    front_end::FrontEnd,
    screen::{card_emails, Group, Xvfb},
    signing::split_signed,
};

const SECRET: &str = "The Thunderbird secret, decrypted by the card.";

/// Thunderbird with a profile of its own; killed when dropped.
struct Thunderbird {
    group: Group,
    profile: PathBuf,
}

impl Thunderbird {
    /// Starts Thunderbird with `front`'s gpg links as its external GnuPG.
    fn start(env: &Env, front: &FrontEnd, display: &str) -> Thunderbird {
        let profile = env.path("thunderbird-profile");
        std::fs::create_dir_all(profile.join("Mail/Local Folders")).expect("profile");
        std::fs::write(profile.join("user.js"), user_js(&front.bin().join("gpg"))).expect("prefs");
        let home = env.path("thunderbird-home");
        std::fs::create_dir_all(&home).expect("home");
        let group = Group::start(
            front
                .client(env, &mut Command::new("thunderbird"))
                .args(["--no-remote", "--profile"])
                .arg(&profile)
                .args(["--marionette", "-remote-allow-system-access"])
                .env("DISPLAY", display)
                .env("HOME", &home)
                .env_remove("DBUS_SESSION_BUS_ADDRESS"),
            &env.path("thunderbird.log"),
        );
        Thunderbird { group, profile }
    }

    /// Marionette, once Thunderbird wrote the port it listens on into the profile.
    fn marionette(&mut self, env: &Env) -> Marionette {
        let file = self.profile.join("MarionetteActivePort");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(port) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                return Marionette::connect(port);
            }
            let log = std::fs::read_to_string(env.path("thunderbird.log")).unwrap_or_default();
            if let Ok(Some(status)) = self.group.0.try_wait() {
                panic!("thunderbird ended ({status}) before Marionette started:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "thunderbird's Marionette did not start in 120 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The profile's settings: Marionette on a port of its choosing, the external GnuPG at
/// `gpg`, a Local Folders account, and no first-run dialogs or network.
fn user_js(gpg: &Path) -> String {
    let prefs = [
        ("marionette.port", "0".to_string()),
        ("mail.openpgp.allow_external_gnupg", "true".into()),
        (
            "mail.openpgp.alternative_gpg_path",
            format!("\"{}\"", gpg.display()),
        ),
        ("mail.accountmanager.accounts", "\"account1\"".into()),
        ("mail.account.account1.server", "\"server1\"".into()),
        (
            "mail.accountmanager.localfoldersserver",
            "\"server1\"".into(),
        ),
        ("mail.server.server1.type", "\"none\"".into()),
        ("mail.server.server1.hostname", "\"Local Folders\"".into()),
        ("mail.server.server1.userName", "\"nobody\"".into()),
        ("mail.server.server1.name", "\"Local Folders\"".into()),
        ("mail.shell.checkDefaultClient", "false".into()),
        ("mail.rights.version", "1".into()),
        ("mail.provider.suppress_dialog_on_startup", "true".into()),
        ("mailnews.start_page.enabled", "false".into()),
        ("app.update.disabledForTesting", "true".into()),
        ("datareporting.policy.dataSubmissionEnabled", "false".into()),
        ("toolkit.telemetry.reportingpolicy.firstRun", "false".into()),
        ("network.dns.disableIPv6", "true".into()),
    ];
    prefs
        .iter()
        .map(|(name, value)| format!("user_pref(\"{name}\", {value});\n"))
        .collect()
}

/// A Marionette client: `LENGTH:JSON` frames, commands `[0, id, name, params]`, answers
/// `[1, id, error, result]`; every script runs in chrome context.
struct Marionette {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next: u64,
}

impl Marionette {
    fn connect(port: u16) -> Marionette {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("marionette");
        stream
            .set_read_timeout(Some(Duration::from_secs(240)))
            .expect("timeout");
        let mut m = Marionette {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            next: 0,
        };
        let hello = m.frame();
        assert_eq!(hello["marionetteProtocol"], 3, "marionette hello: {hello}");
        m.command("WebDriver:NewSession", json!({"capabilities": {}}));
        m.command("Marionette:SetContext", json!({"value": "chrome"}));
        m.command("WebDriver:SetTimeouts", json!({"script": 180_000}));
        m
    }

    fn frame(&mut self) -> Value {
        let mut length = Vec::new();
        self.reader
            .read_until(b':', &mut length)
            .expect("marionette frame");
        let length: usize = text(&length[..length.len().saturating_sub(1)])
            .parse()
            .expect("frame length");
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("frame body");
        serde_json::from_slice(&body).expect("frame json")
    }

    fn command(&mut self, name: &str, params: Value) -> Value {
        self.next += 1;
        let body = json!([0, self.next, name, params]).to_string();
        write!(self.writer, "{}:{body}", body.len()).expect("send");
        let reply = self.frame();
        assert_eq!(reply[1], self.next, "answer to another command: {reply}");
        assert!(reply[2].is_null(), "marionette {name}: {}", reply[2]);
        reply[3].clone()
    }

    /// Runs `body` as an async function of `args`; its result, or `{error}` if it threw.
    fn run(&mut self, body: &str, args: Value) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];\n\
             (async (...args) => {{ {body} }})(...Array.from(arguments).slice(0, -1))\n\
             .then(done, e => done({{ error: String(e) + '\\n' + e.stack }}));"
        );
        let answer = self.command(
            "WebDriver:ExecuteAsyncScript",
            json!({"script": script, "args": args}),
        );
        answer["value"].clone()
    }
}

/// Opens an .eml file as a user does (File > Open Saved Message), in a tab, and waits until
/// the header's encryption icon says how decryption went; returns that icon's text and the
/// message pane's text, and closes the tab.
const OPEN_MESSAGE: &str = r#"
const [path, needle] = args;
const { MailUtils } = ChromeUtils.importESModule("resource:///modules/MailUtils.sys.mjs");
const file = new FileUtils.File(path);
const win = Services.wm.getMostRecentWindow("mail:3pane");
const tabmail = win.document.getElementById("tabmail");
MailUtils.openEMLFile(win, file, Services.io.newFileURI(file));
const tab = tabmail.currentTabInfo;
let seen = { icon: null, body: null };
for (let i = 0; i < 600; i++) {
  await new Promise(r => win.setTimeout(r, 100));
  const about = tab.chromeBrowser && tab.chromeBrowser.contentWindow;
  const doc = about && about.document;
  const icon = doc && doc.getElementById("encryptedHdrIcon");
  const pane = about && about.getMessagePaneBrowser && about.getMessagePaneBrowser();
  const body = pane && pane.contentDocument && pane.contentDocument.body;
  seen = {
    mode: tab.mode.name,
    icon: icon && !icon.hidden && icon.getAttribute("src") ? icon.getAttribute("alt") : null,
    body: body ? body.textContent : null,
  };
  const failed = seen.icon && /fail/i.test(seen.icon);
  if (seen.icon && (failed || (seen.body || "").includes(needle))) {
    break;
  }
}
tabmail.closeTab(tab);
return seen;
"#;

/// A user's signed mail: an account whose identity uses the card's key as an external
/// GnuPG key (the account settings' "external GnuPG key" needs the public key in
/// Thunderbird's own keyring), a message written in the compose window with "Sign" on and
/// sent later, that is signed (GPGME's detached signature) and kept in the Outbox.
const SEND_SIGNED: &str = r#"
const [certFile, keyId, email, body] = args;
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const { EnigmailKeyRing } = ChromeUtils.importESModule(
  "chrome://openpgp/content/modules/keyRing.sys.mjs");
const { RNP } = ChromeUtils.importESModule("chrome://openpgp/content/modules/RNP.sys.mjs");
await RNP.init();
const win = Services.wm.getMostRecentWindow("mail:3pane");
const imported = await EnigmailKeyRing.importKeyDataSilent(
  win, await IOUtils.readUTF8(certFile), false);
const smtp = MailServices.outgoingServer.createServer("smtp").QueryInterface(Ci.nsISmtpServer);
smtp.hostname = "127.0.0.1";
smtp.port = 1;
const server = MailServices.accounts.createIncomingServer("owner", "127.0.0.1", "pop3");
server.loginAtStartUp = false;
server.doBiff = false;
const identity = MailServices.accounts.createIdentity();
identity.email = email;
identity.fullName = "Card Owner";
identity.smtpServerKey = smtp.key;
identity.setUnicharAttribute("openpgp_key_id", keyId);
identity.setBoolAttribute("is_gnupg_key_id", true);
identity.attachPgpKey = false;
const account = MailServices.accounts.createAccount();
account.incomingServer = server;
account.addIdentity(identity);

const fields = Cc["@mozilla.org/messengercompose/composefields;1"]
  .createInstance(Ci.nsIMsgCompFields);
fields.to = "Alice <alice@example.org>";
fields.subject = "signed by the card";
fields.body = body;
const params = Cc["@mozilla.org/messengercompose/composeparams;1"]
  .createInstance(Ci.nsIMsgComposeParams);
params.composeFields = fields;
params.identity = identity;
params.type = Ci.nsIMsgCompType.New;
params.format = Ci.nsIMsgCompFormat.PlainText;
MailServices.compose.OpenComposeWindowWithParams(null, params);
let compose = null;
for (let i = 0; i < 600 && !(compose && compose.gLoadingComplete); i++) {
  await new Promise(r => win.setTimeout(r, 100));
  compose = Services.wm.getMostRecentWindow("msgcompose");
}
if (!compose || !compose.gLoadingComplete) {
  return { error: "the compose window did not open" };
}
// Options > Digitally Sign, as the user turns it on.
if (!compose.gSendSigned) {
  compose.toggleGlobalSignMessage();
}
const signing = compose.gSendSigned;
compose.goDoCommand("cmd_sendLater");
const outbox = PathUtils.join(
  MailServices.accounts.localFoldersServer.localPath.path, "Unsent Messages");
for (let i = 0; i < 600; i++) {
  await new Promise(r => win.setTimeout(r, 100));
  const mail = (await IOUtils.exists(outbox)) ? await IOUtils.readUTF8(outbox) : "";
  if (mail.includes("END PGP SIGNATURE")) {
    return { imported, signing, mail };
  }
  for (const w of Services.wm.getEnumerator(null)) {
    const info = w.document.getElementById("infoBody");
    if (info) {
      return { imported, signing, error: w.document.title + ": " + info.textContent };
    }
  }
}
return { imported, signing, error: "nothing reached the Outbox" };
"#;

/// Thunderbird's other GPGME signing call: `GPGME.sign`, as its encrypt+sign path makes the
/// signed data (normal mode, binary) that RNP then encrypts.
const SIGN_FOR_ENCRYPTION: &str = r#"
const [sender, text] = args;
const { GPGME } = ChromeUtils.importESModule("chrome://openpgp/content/modules/GPGME.sys.mjs");
const status = {};
const signed = await GPGME.sign(text, { sign: true, encrypt: false, sender }, status);
return { gpgme: GPGME.allDependenciesLoaded(), status,
         signed: signed ? Array.from(signed) : null };
"#;

pub fn thunderbird_reads_and_signs_with_the_card(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "thunderbird");
    let (good_mail, tampered_mail) = card_emails(&front, "thunderbird", SECRET);
    let good = env.path("thunderbird-good.eml");
    std::fs::write(&good, good_mail).expect("eml");
    let tampered = env.path("thunderbird-tampered.eml");
    std::fs::write(&tampered, tampered_mail).expect("eml");

    let xvfb = Xvfb::start();
    let mut thunderbird = Thunderbird::start(env, &front, &xvfb.display);
    let mut marionette = thunderbird.marionette(env);
    let log = || std::fs::read_to_string(env.path("thunderbird.log")).unwrap_or_default();

    // RNP has no secret key for the card's subkey, so Thunderbird hands the message to
    // GPGME's unwrap, that is to cardecrypt-gpg, which asks the (scripted) pinentry.
    let shown = marionette.run(OPEN_MESSAGE, json!([good, SECRET]));
    assert!(
        shown["body"].as_str().unwrap_or_default().contains(SECRET),
        "Thunderbird showed {shown}\n{}",
        log()
    );
    assert_eq!(shown["icon"], "Decryption successful", "{shown}");
    assert_eq!(front.pinentry_asks(), 1, "the PIN came from the pinentry");

    let refused = marionette.run(OPEN_MESSAGE, json!([tampered, SECRET]));
    assert_eq!(refused["icon"], "Decryption failed", "{refused}\n{}", log());
    assert!(
        !refused["body"]
            .as_str()
            .unwrap_or_default()
            .contains("secret"),
        "a tampered message showed plaintext: {refused}"
    );

    let primary = front.fingerprint("cv25519@cardecrypt.test");
    // Thunderbird names an external key by its key id, as the account settings store it.
    let key_id = &primary[primary.len() - 16..];
    let asked = front.pinentry_asks();
    let cert = data_dir().join("keys/cv25519.pub.asc");
    let sent = marionette.run(
        SEND_SIGNED,
        json!([
            cert,
            key_id,
            "cv25519@cardecrypt.test",
            "Signed in Thunderbird by the card.\n"
        ]),
    );
    assert!(sent["error"].is_null(), "{sent}\n{}", log());
    assert_eq!(sent["signing"], true, "{sent}");
    assert_eq!(
        front.pinentry_asks(),
        asked + 1,
        "one PIN for the signature"
    );
    let mail = sent["mail"].as_str().expect("the Outbox");
    assert!(mail.contains("multipart/signed"), "{mail}");
    // Thunderbird's folders keep CRLF line ends; split_signed gives the part in CRLF again.
    let (part, signature) = split_signed(&mail.replace("\r\n", "\n"));
    verifies(
        &front,
        &primary,
        &[
            ("mail-part", part.as_bytes()),
            ("mail.asc", signature.as_bytes()),
        ],
    );

    let text_to_sign = "Signed for encryption.\r\n";
    let signed = marionette.run(
        SIGN_FOR_ENCRYPTION,
        json!([format!("0x{key_id}"), text_to_sign]),
    );
    assert_eq!(signed["gpgme"], true, "Thunderbird loaded GPGME: {signed}");
    assert_eq!(signed["status"]["exitCode"], 0, "{signed}\n{}", log());
    assert_eq!(front.pinentry_asks(), asked + 2, "one PIN per signature");
    let binary: Vec<u8> = signed["signed"]
        .as_array()
        .expect("bytes")
        .iter()
        .map(|b| b.as_u64().expect("byte") as u8)
        .collect();
    verifies(&front, &primary, &[("signed.gpg", &binary)]);
    let _ = marionette.command("Marionette:Quit", json!({"flags": ["eForceQuit"]}));
}

/// The real gpg verifies FILES (written under their names in the gpg home's parent) as a
/// signature by `primary`: one signed file, or a detached signature and its data.
fn verifies(front: &FrontEnd, primary: &str, files: &[(&str, &[u8])]) {
    let dir = front.home().parent().expect("parent");
    let mut args = vec!["--status-fd".to_string(), "1".into(), "--verify".into()];
    // gpg takes the signature first, then the data.
    for (name, bytes) in files.iter().rev() {
        let path = dir.join(format!("thunderbird-{name}"));
        std::fs::write(&path, bytes).expect("write");
        args.push(path.to_str().expect("utf8").to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let verify = front.gpg(&args, b"");
    assert!(
        text(&verify.stdout).contains(&format!("VALIDSIG {primary}")),
        "gpg --verify said\n{}\n{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}
