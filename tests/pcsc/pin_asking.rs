//! How the PIN is asked: on gpg front ends' command descriptor, through the config file's
//! pinentry, and through pinentry-curses when stdin is taken.

use super::*;

/// gpg front ends that answer `GET_HIDDEN passphrase.enter` with the PIN on their command
/// descriptor: Emacs EasyPG (`--command-fd 0 --pinentry-mode loopback --status-fd 1`, output
/// to a file) and Evolution (no pinentry mode, ciphertext on stdin, command fd 4, status on
/// stderr, plaintext on stdout).
pub fn gpg_front_ends_send_the_pin_on_the_command_fd(env: &Env) {
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
pub fn answer_get_hidden(
    env: &Env,
    cmd: &mut Command,
    status_on_stdout: bool,
) -> (String, Vec<u8>) {
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
pub fn config_file_sets_signer_certs_keep_unlocked_and_pinentry(env: &Env) {
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
pub fn pinentry_asks_when_stdin_is_taken(env: &Env) {
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
