//! The `cardecrypt-vcard` command line. (This test also makes `cargo test --workspace` build
//! the binary, which cardecrypt's pcscd tests start.)

use std::process::Command;

fn vcard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cardecrypt-vcard"))
}

#[test]
fn help_names_the_options() {
    let out = vcard().arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in ["--state", "--serial", "--port", "--count-apdus"] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}

#[test]
fn a_serial_must_be_eight_hex_digits() {
    for bad in ["1", "0000000G", "000000001"] {
        let out = vcard().args(["--serial", bad]).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--serial"),
            "{bad}"
        );
    }
}
