//! Promises that must hold with other programs on the same card: a PIN we sent is forgotten
//! when we are done, whatever else stays connected; one another program sent is left alone;
//! a kept session is extended, not restarted.

use super::*;

/// Another PC/SC client's shared connection to the test card, held for as long as it lives
/// (what scdaemon with `pcsc-shared`, OpenSC or KeePassXC do).
struct OtherProgram {
    _ctx: pcsc::Context,
    card: pcsc::Card,
    /// Times it found the card reset (by someone else) and reconnected, as programs do.
    resets_seen: usize,
}

impl OtherProgram {
    fn connect() -> OtherProgram {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
        let reader = std::ffi::CString::new(reader_name()).expect("reader");
        let card = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .expect("shared connection");
        OtherProgram {
            _ctx: ctx,
            card,
            resets_seen: 0,
        }
    }

    /// Sends APDUs in one transaction; the status words of each answer. A card reset by
    /// someone else is reconnected to first.
    fn send(&mut self, apdus: &[&[u8]]) -> Vec<[u8; 2]> {
        if let Err(pcsc::Error::ResetCard) = self.card.transaction().map(drop) {
            self.resets_seen += 1;
            self.card
                .reconnect(
                    pcsc::ShareMode::Shared,
                    pcsc::Protocols::ANY,
                    pcsc::Disposition::LeaveCard,
                )
                .expect("reconnect after a reset");
        }
        let tx = self.card.transaction().expect("transaction");
        let mut buf = [0u8; 300];
        apdus
            .iter()
            .map(|apdu| {
                let resp = tx.transmit(apdu, &mut buf).expect("transmit");
                [resp[resp.len() - 2], resp[resp.len() - 1]]
            })
            .collect()
    }

    /// Whether the card says PW1 (decryption) is verified: an empty VERIFY, which spends
    /// no try.
    fn pw1_verified(&mut self) -> bool {
        let answers = self.send(&[SELECT_OPENPGP, &[0x00, 0x20, 0x00, 0x82]]);
        answers[1] == [0x90, 0x00]
    }

    /// Verifies PW1 as another program would.
    fn verify_pw1(&mut self) {
        let mut verify = vec![0x00, 0x20, 0x00, 0x82, USER_PIN.len() as u8];
        verify.extend(USER_PIN.as_bytes());
        let answers = self.send(&[SELECT_OPENPGP, &verify]);
        assert_eq!(answers[1], [0x90, 0x00], "VERIFY by the other program");
    }
}

const SELECT_OPENPGP: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01,
];

fn message() -> Vec<u8> {
    std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base")
}

/// Waits (up to `limit`) for `done`; whether it came.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

pub fn a_shared_connection_does_not_keep_our_pin(env: &Env) {
    env.import_to_card("cv25519");
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    let mut other = OtherProgram::connect();
    let message = message();
    assert_ok(
        &env.cardecrypt_with_pin(&[], &message),
        "decrypt with the PIN",
    );
    assert!(
        !other.pw1_verified(),
        "the card is still unlocked after the decrypt"
    );
    let out = env.cardecrypt(&["--batch"], &message);
    assert_fails(&out, exit::PIN, "needs its PIN");
    // The same for cardecrypt mail and inspect --decrypt, which decrypt in memory.
    let email = std::fs::read(data_dir().join("mail/neomutt-encrypted.eml")).expect("eml");
    let pin = env.path("pin");
    let pin = pin.to_str().expect("utf8");
    let out = env.cardecrypt(&["mail", "--batch", "--pin-file", pin], &email);
    assert_ok(&out, "mail with the PIN");
    assert!(!other.pw1_verified(), "unlocked after cardecrypt mail");
    let file = env.path("promise.gpg");
    std::fs::write(&file, &message).expect("write");
    let file = file.to_str().expect("utf8");
    let args = ["inspect", "--decrypt", "--batch", "--pin-file", pin, file];
    assert_ok(
        &env.cardecrypt(&args, b""),
        "inspect --decrypt with the PIN",
    );
    assert!(!other.pw1_verified(), "unlocked after inspect --decrypt");
    // Forgotten in the transaction that sent it: nobody else saw the card unlocked, and no
    // reset was needed.
    assert_eq!(other.resets_seen, 0, "a decrypt reset the card");
    // A kept session ends with the PIN forgotten too: with another program connected (it
    // may have verified the PIN meanwhile and go on believing so), by a reset it sees.
    let out = env.cardecrypt_with_pin(&["--keep-unlocked", "2s"], &message);
    assert_ok(&out, "decrypt, kept for 2 s");
    assert!(other.pw1_verified(), "not kept unlocked");
    assert_ok(
        &env.cardecrypt(&["--batch"], &message),
        "decrypt while kept",
    );
    assert!(
        wait_for(Duration::from_secs(15), || holders().is_empty()),
        "the holder did not end"
    );
    assert!(
        !other.pw1_verified(),
        "still unlocked after the kept time ran out"
    );
    assert_eq!(other.resets_seen, 1, "the other program saw no reset");
    let out = env.cardecrypt(&["--batch"], &message);
    assert_fails(&out, exit::PIN, "needs its PIN");
    assert_ok(&env.cardecrypt(&["card", "status"], b""), "card status");
}

pub fn a_pin_another_program_sent_is_left_alone(env: &Env) {
    env.import_to_card("cv25519");
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    let mut other = OtherProgram::connect();
    other.verify_pw1();
    // The card is unlocked: cardecrypt needs no PIN, and must not lock what it did not
    // unlock, nor start a holder for it.
    let out = env.cardecrypt(&["--batch", "--keep-unlocked", "60s"], &message());
    assert_ok(&out, "decrypt on a card another program unlocked");
    assert!(
        other.pw1_verified(),
        "cardecrypt locked another program's PIN"
    );
    assert_eq!(
        env.kept_unlocked_seconds(),
        None,
        "a holder for a PIN not ours"
    );
    let out = env.cardecrypt(&["lock"], b"");
    assert_ok(&out, "lock");
    assert!(
        text(&out.stderr).contains("other programs use the card"),
        "{}",
        text(&out.stderr)
    );
    assert!(!other.pw1_verified(), "lock leaves the card unlocked");
    assert_eq!(
        other.resets_seen, 1,
        "locked behind the other program's back"
    );
}

/// scdaemon with `pcsc-shared`, as the README tells gpg users to set it, keeps its connection
/// after `gpg --card-status`: a decrypt of ours must still end with the card locked.
pub fn scdaemon_sharing_the_card_does_not_keep_our_pin(env: &Env) {
    env.import_to_card("cv25519");
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scdaemon.conf"),
        format!("disable-ccid\npcsc-shared\nreader-port {}\n", reader_name()),
    )
    .expect("conf");
    let gpg = |args: &[&str]| {
        run(
            Command::new("gpg")
                .arg("--homedir")
                .arg(home.path())
                .args(["--batch"])
                .args(args),
            b"",
        )
    };
    assert_ok(&gpg(&["--card-status"]), "gpg --card-status");
    let message = message();
    assert_ok(
        &env.cardecrypt_with_pin(&[], &message),
        "decrypt with the PIN",
    );
    std::thread::sleep(Duration::from_millis(1500)); // > pcscd's power-off delay
    let out = env.cardecrypt(&["--batch"], &message);
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home.path())
        .args(["--kill", "all"])
        .status();
    assert_fails(&out, exit::PIN, "needs its PIN");
}

/// scdaemon remembers that it verified the PIN and never asks the card again. Whatever we do
/// must leave that belief true, or every later `gpg -d` fails with "Bad PIN" until scdaemon
/// restarts: a card scdaemon unlocked gets no PIN from us (so nothing of ours to forget),
/// and a card locked while scdaemon is connected is reset, which scdaemon notices.
pub fn scdaemon_keeps_working_beside_us(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    assert_ok(&env.gpg(&["--card-status"], b""), "gpg --card-status");
    let enc = env.gpg(&["-e", "-r", "cv25519@cardecrypt.test"], b"still gpg's\n");
    assert_ok(&enc, "gpg -e");
    let gpg_decrypts = |what: &str| {
        let out = env.gpg_decrypts_on_card(&enc.stdout);
        assert_ok(&out, &format!("gpg -d {what}"));
        assert_eq!(out.stdout, b"still gpg's\n", "{what}");
    };
    gpg_decrypts("first");
    // The PIN file is not used: the card is unlocked, and scdaemon's to keep so.
    let out = env.cardecrypt_with_pin(&[], &enc.stdout);
    assert_ok(&out, "cardecrypt on the card scdaemon unlocked");
    gpg_decrypts("after cardecrypt");
    // `lock` with scdaemon connected resets the card; scdaemon, told, asks for the PIN again.
    let out = env.cardecrypt(&["lock"], b"");
    assert_ok(&out, "lock");
    assert!(
        text(&out.stderr).contains("other programs use the card"),
        "{}",
        text(&out.stderr)
    );
    let out = env.cardecrypt(&["--batch"], &enc.stdout);
    assert_fails(&out, exit::PIN, "needs its PIN");
    gpg_decrypts("after lock");
    // The same when our holder's time ends (here by `lock`) after scdaemon used the card.
    let out = env.cardecrypt_with_pin(&["--keep-unlocked", "60s"], &enc.stdout);
    assert_ok(&out, "decrypt, kept");
    gpg_decrypts("while our holder keeps the card");
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock the kept card");
    let out = env.cardecrypt(&["--batch"], &enc.stdout);
    assert_fails(&out, exit::PIN, "needs its PIN");
    gpg_decrypts("after the holder locked");
    env.stop_gpg();
}

/// The card forgets the PIN after each part of an email (each its own transaction), yet
/// the user gives it once: a PIN read from a pipe is there for the second part too.
pub fn one_pin_for_every_part_of_an_email(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    let part = |text: &str| {
        let enc = env.gpg(
            &["-e", "-a", "-r", "cv25519@cardecrypt.test"],
            text.as_bytes(),
        );
        assert_ok(&enc, "gpg -e -a");
        format!(
            "--two-parts\nContent-Type: text/plain; charset=us-ascii\n\n{}",
            String::from_utf8(enc.stdout).expect("armor")
        )
    };
    let email = format!(
        "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: two\n\
         MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"two-parts\"\n\n\
         {}{}--two-parts--\n",
        part("the first part\n"),
        part("the second part\n")
    );
    let file = env.path("two-parts.eml");
    std::fs::write(&file, email).expect("write");
    let out = env.cardecrypt(
        &[
            "mail",
            "--batch",
            "--pin-fd",
            "0",
            file.to_str().expect("utf8"),
        ],
        format!("{USER_PIN}\n").as_bytes(),
    );
    assert_ok(&out, "mail with the PIN on a pipe");
    let shown = text(&out.stdout);
    assert!(
        shown.contains("the first part") && shown.contains("the second part"),
        "{shown}"
    );
    let out = env.cardecrypt(
        &["--batch"],
        &std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base"),
    );
    assert_fails(&out, exit::PIN, "needs its PIN");
}

/// A kept session costs what a plain decrypt costs: the running holder is extended over its
/// socket, not replaced. Counted as processes, not timed: the holder keeps its PID.
pub fn a_kept_session_extends_one_holder(env: &Env) {
    env.import_to_card("cv25519");
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    let message = message();
    let out = env.cardecrypt_with_pin(&["--keep-unlocked", "30s"], &message);
    assert_ok(&out, "decrypt, kept");
    let first = holders();
    assert_eq!(first.len(), 1, "{first:?}");
    for _ in 0..3 {
        let out = env.cardecrypt(&["--batch", "--keep-unlocked", "60s"], &message);
        assert_ok(&out, "decrypt in the kept session");
    }
    assert_eq!(holders(), first, "the holder was replaced");
    let left = env.kept_unlocked_seconds().expect("kept");
    assert!(left > 30, "not extended: {left} s left");
    // Two starts at once leave one holder, and lock reaches it.
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    assert!(wait_for(Duration::from_secs(5), || holders().is_empty()));
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = env.cardecrypt_command();
            cmd.args(["--batch", "--pin-file"])
                .arg(env.path("pin"))
                .args(["--keep-unlocked", "60s", "-o", "/dev/null"])
                .arg(data_dir().join("base_seipd1.gpg"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in starts {
        assert!(child.wait().expect("wait").success());
    }
    assert!(wait_for(Duration::from_secs(5), || holders().len() == 1));
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    assert!(
        wait_for(Duration::from_secs(5), || holders().is_empty()),
        "a holder lock did not reach: {:?}",
        holders()
    );
}

/// PIDs of running `cardecrypt __hold` processes.
fn holders() -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            (args.len() > 1 && args[1] == b"__hold").then_some(pid)
        })
        .collect();
    pids.sort();
    pids
}

/// A few kilobytes of bzip2 that expand to 1 GiB of zeros, as a bare message and inline in
/// an email: every command stays under 256 MiB peak RSS; the ones that decrypt into memory
/// stop at their limit with exit 6, the streaming ones decrypt.
pub fn a_decompression_bomb_stays_in_bounded_memory(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    let dir = env.path("bomb");
    std::fs::create_dir_all(&dir).expect("dir");
    let bomb = dir.join("bomb.gpg");
    let made = Command::new("/bin/sh")
        .arg("-c")
        .arg(
            "head -c 1G /dev/zero | gpg --homedir \"$1\" --batch --trust-model always \
             --compress-algo bzip2 -z 9 -e -r cv25519@cardecrypt.test -o \"$2\"",
        )
        .arg("sh")
        .arg(&env.gnupghome)
        .arg(&bomb)
        .status()
        .expect("sh");
    assert!(made.success(), "making the bomb");
    let binary = std::fs::read(&bomb).expect("bomb");
    assert!(binary.len() < 16 << 10, "{} bytes", binary.len());
    let email = dir.join("bomb.eml");
    let armored = env.gpg(&["--enarmor"], &binary);
    let mut mail = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: bomb\r\n\
                     Content-Type: text/plain\r\n\r\n"
        .to_vec();
    mail.extend(
        text(&armored.stdout)
            .replace("ARMORED FILE", "MESSAGE")
            .as_bytes(),
    );
    std::fs::write(&email, &mail).expect("eml");
    let limit_kib = 256 * 1024;
    let pin = env.path("pin");
    let with_pin = |args: &[&str]| {
        let mut cmd = env.cardecrypt_command();
        cmd.args(args)
            .args(["--batch", "--pin-file"])
            .arg(&pin)
            .env_remove("CARDECRYPT_MAX_PLAINTEXT");
        cmd
    };
    let null = || Stdio::null();
    let (file, email_arg) = (bomb.to_str().expect("utf8"), email.to_str().expect("utf8"));
    for (what, cmd, code) in [
        (
            "mail",
            with_pin(&["mail", email_arg]),
            Some(exit::BAD_MESSAGE),
        ),
        (
            "inspect --decrypt of the email",
            with_pin(&["inspect", "--decrypt", email_arg]),
            Some(exit::BAD_MESSAGE),
        ),
        (
            "inspect --decrypt of the message",
            with_pin(&["inspect", "--decrypt", file]),
            Some(0),
        ),
        ("cardecrypt to a pipe", with_pin(&[file]), Some(0)),
    ] {
        let (status, kib) = peak_rss(&cmd, null());
        println!("bomb through {what}: {status}, peak RSS {} MiB", kib / 1024);
        assert_eq!(status.code(), code.map(i32::from), "{what}: {status}");
        assert!(kib <= limit_kib, "{what}: peak RSS {kib} KiB");
    }
    // The error says what happened, once.
    let out = run(&mut with_pin(&["mail", email_arg]), b"");
    assert_fails(&out, exit::BAD_MESSAGE, "in-memory limit");
    assert!(out.stdout.is_empty(), "mail wrote something");
    // The limit is the user's to set: CARDECRYPT_MAX_PLAINTEXT below an ordinary email's
    // plaintext stops it, with the limit named.
    let neomutt = data_dir().join("mail/neomutt-encrypted.eml");
    let mut small = with_pin(&["mail", neomutt.to_str().expect("utf8")]);
    small.env("CARDECRYPT_MAX_PLAINTEXT", "16");
    assert_fails(&run(&mut small, b""), exit::BAD_MESSAGE, "in-memory limit");
    // The gpg front end: the engine streams, the real gpg decompresses.
    let front = env.front_end_decrypt(&bomb);
    let pin_in = std::fs::File::open(&pin).expect("pin");
    let (status, kib) = peak_rss_with(&front, Stdio::from(pin_in), null());
    println!(
        "bomb through cardecrypt-gpg: {status}, peak RSS {} MiB",
        kib / 1024
    );
    assert!(status.success(), "cardecrypt-gpg: {status}");
    assert!(kib <= limit_kib, "cardecrypt-gpg: peak RSS {kib} KiB");
}

/// A card that cannot forget a PIN by itself (VERIFY P1=FF refused, as before OpenPGP card
/// 3.0) is reset at the end instead, with one line saying that other programs' sessions were
/// reset too; the PIN is gone all the same.
pub fn a_card_that_cannot_forget_is_reset(env: &Env, vcard: &mut Option<VcardProcess>) {
    env.import_to_card("cv25519");
    if let Some(card) = vcard.take() {
        card.stop();
    }
    *vcard = Some(VcardProcess::start_with(&env.state, &["--no-pin-reset"]));
    let message = message();
    let mut other = OtherProgram::connect();
    let out = env.cardecrypt_with_pin(&[], &message);
    let restore = |vcard: &mut Option<VcardProcess>| {
        if let Some(card) = vcard.take() {
            card.stop();
        }
        *vcard = Some(VcardProcess::start(&env.state));
    };
    let verified_after = other.pw1_verified();
    let batch = env.cardecrypt(&["--batch"], &message);
    drop(other);
    restore(vcard);
    assert_ok(&out, "decrypt with the PIN");
    let notes = text(&out.stderr);
    assert!(
        notes.contains("was reset") && notes.contains("other programs"),
        "{notes}"
    );
    assert_eq!(notes.lines().count(), 1, "{notes}");
    assert!(!verified_after, "the card kept the PIN");
    assert_fails(&batch, exit::PIN, "needs its PIN");
}
