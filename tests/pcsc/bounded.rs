//! Large messages: bounded memory to a file, a pipe and through cardecrypt-gpg, nothing left
//! behind when tampered or killed.

use super::*;

/// Peak resident memory (KiB) of `cmd` run under GNU time, with its exit status.
pub fn peak_rss(cmd: &Command, stdout: Stdio) -> (std::process::ExitStatus, u64) {
    peak_rss_with(cmd, Stdio::null(), stdout)
}

/// A 200 MiB message, to a file and to a pipe, and through cardecrypt-gpg, in at most 64 MiB
/// (peak RSS of the decrypting process); tampered, it leaves no
/// file and writes nothing; killed with SIGTERM while writing, it leaves nothing behind.
pub fn large_messages_decrypt_in_bounded_memory(env: &Env) {
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
