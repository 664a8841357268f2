//! The command line as a user types it, through the binary, where no card is needed:
//! options on either side of a subcommand, bounded durations.

use std::process::{Command, Output};

use cardecrypt::error::exit;

fn cardecrypt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardecrypt"))
        .args(args)
        .env("CARDECRYPT_CONFIG", "/nonexistent/cardecrypt-config")
        .env_remove("CARDECRYPT_CARD")
        .env_remove("CARDECRYPT_KEEP_UNLOCKED")
        .output()
        .expect("run cardecrypt")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The decrypt command's own options before a subcommand would be silently unused: they are
/// named in a usage error.
#[test]
fn decrypt_only_options_before_a_subcommand_are_refused_by_name() {
    for sub in [&["mail", "x.eml"][..], &["card", "list"], &["doctor"]] {
        let mut args = vec!["--status-fd", "2"];
        args.extend_from_slice(sub);
        let out = cardecrypt(&args);
        assert_eq!(
            out.status.code(),
            Some(exit::USAGE.into()),
            "{args:?}: {}",
            stderr(&out)
        );
        let text = stderr(&out);
        assert!(
            text.contains("--status-fd") && text.contains(sub[0]),
            "{args:?}: {text}"
        );
    }
}

/// Shared options (PIN, card, batch, output) work before the subcommand and after it, as gpg
/// users type them.
#[test]
fn shared_options_on_either_side_of_the_subcommand_are_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mail = dir.path().join("plain.eml");
    std::fs::write(&mail, "Subject: hi\n\nnot encrypted\n").expect("write");
    let pin = dir.path().join("pin");
    std::fs::write(&pin, "123456\n").expect("write");
    let (pin, mail) = (pin.to_str().expect("utf8"), mail.to_str().expect("utf8"));
    let outputs: Vec<String> = (0..3)
        .map(|i| dir.path().join(format!("out{i}.eml")).display().to_string())
        .collect();
    let orders = [
        [
            "mail",
            "--batch",
            "--pin-file",
            pin,
            "-o",
            &outputs[0],
            mail,
        ],
        [
            "--batch",
            "--pin-file",
            pin,
            "mail",
            "-o",
            &outputs[1],
            mail,
        ],
        [
            "--batch",
            "--pin-file",
            pin,
            "-o",
            &outputs[2],
            "mail",
            mail,
        ],
    ];
    for (args, output) in orders.iter().zip(&outputs) {
        let out = cardecrypt(args);
        // Nothing encrypted: written unchanged (to -o), exit 9, and no card or PIN needed.
        assert_eq!(
            out.status.code(),
            Some(exit::NOT_ENCRYPTED.into()),
            "{args:?}: {}",
            stderr(&out)
        );
        let written = std::fs::read(output).expect("the -o file");
        assert_eq!(written, b"Subject: hi\n\nnot encrypted\n", "{args:?}");
    }
}

#[test]
fn durations_are_bounded() {
    for huge in ["10000000000000000h", "25h", "18446744073709551615"] {
        let out = cardecrypt(&["--keep-unlocked", huge, "msg.asc"]);
        assert_eq!(
            out.status.code(),
            Some(exit::USAGE.into()),
            "{huge}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::write(&config, "keep-unlocked = 10000000000000000h\n").expect("write");
    // The config file's value is bounded the same way, and the error names the line.
    let out = Command::new(env!("CARGO_BIN_EXE_cardecrypt"))
        .arg("/nonexistent/msg.asc")
        .env("CARDECRYPT_CONFIG", &config)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(exit::USAGE.into()),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

/// A "real gpg" that is cardecrypt-gpg again, named by the environment, the config file, a
/// link or a copy, is an error at once, never a process starting itself without end.
#[test]
fn the_real_gpg_is_never_the_front_end_itself() {
    let front = env!("CARGO_BIN_EXE_cardecrypt-gpg");
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("gpg");
    std::os::unix::fs::symlink(front, &link).expect("symlink");
    let copy_dir = dir.path().join("copy");
    std::fs::create_dir(&copy_dir).expect("dir");
    let copy = copy_dir.join("gpg");
    std::fs::copy(front, &copy).expect("copy");
    let config = dir.path().join("config");
    std::fs::write(&config, format!("real-gpg = {}\n", link.display())).expect("config");
    let run = |real: Option<&std::path::Path>, config: &std::path::Path| {
        let mut cmd = Command::new(front);
        cmd.args(["--batch", "--list-keys"])
            .env("CARDECRYPT_CONFIG", config)
            .env_remove("CARDECRYPT_GPG_RUNNING_REAL");
        match real {
            Some(r) => cmd.env("CARDECRYPT_REAL_GPG", r),
            None => cmd.env_remove("CARDECRYPT_REAL_GPG"),
        };
        cmd.output().expect("run cardecrypt-gpg")
    };
    let none = std::path::Path::new("/nonexistent/config");
    for (what, out) in [
        ("the binary", run(Some(std::path::Path::new(front)), none)),
        ("a link", run(Some(&link), none)),
        ("a copy", run(Some(&copy), none)),
        ("the config file", run(None, &config)),
    ] {
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("front end itself") || text.contains("by cardecrypt-gpg itself"),
            "{what}: {text}"
        );
    }
}
