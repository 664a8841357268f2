//! Whole-process tests through the real PC/SC stack: pcscd with vsmartcard's vpcd driver,
//! the `cardecrypt-vcard` binary as the card, the `cardecrypt` binary as users run it, and
//! the real gpg for interop.
//!
//! On libtest-mimic (harness = false): pcscd and the card are set up once, cases run one
//! after another (one card reader, one card), and what was started is stopped through its
//! child handle. If a pcscd is already running with the vpcd reader it is reused and left
//! running. `cargo test --test pcsc -- NAME` filters, `--list` lists.

#[path = "pcsc/bounded.rs"]
mod bounded;
#[path = "pcsc/brainpool.rs"]
mod brainpool;
#[path = "pcsc/card.rs"]
mod card;
#[path = "pcsc/claws.rs"]
mod claws;
mod common;
#[path = "pcsc/decrypting.rs"]
mod decrypting;
#[path = "pcsc/desktop.rs"]
mod desktop;
#[path = "pcsc/evolution.rs"]
mod evolution;
#[path = "pcsc/faults.rs"]
mod faults;
#[path = "pcsc/front_end.rs"]
mod front_end;
#[path = "pcsc/gpg_front.rs"]
mod gpg_front;
#[path = "pcsc/harness.rs"]
mod harness;
#[path = "pcsc/mutt.rs"]
mod mutt;
#[path = "pcsc/pin_asking.rs"]
mod pin_asking;
#[path = "pcsc/promises.rs"]
mod promises;
#[path = "pcsc/rig.rs"]
mod rig;
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

use bounded::*;
use brainpool::*;
use card::*;
use cardecrypt::error::exit;
use claws::*;
use common::*;
use decrypting::*;
use desktop::*;
use evolution::*;
use faults::*;
use front_end::*;
use gpg_front::*;
use harness::*;
use mutt::*;
use pin_asking::*;
use promises::*;
use rig::*;
use session_keys::*;
use signing::*;
use thunderbird::*;

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
