//! The udev rules file: every rule tags a YubiKey or Nitrokey USB device for the seat user.

use std::path::PathBuf;

#[test]
fn udev_rules_tag_yubikeys_and_nitrokeys_for_the_logged_in_user() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("udev");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("udev/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    assert_eq!(files.len(), 1, "one rules file expected: {files:?}");
    let name = files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    // uaccess must be set before 73-seat-late.rules applies it.
    let order: u32 = name[..2].parse().expect("numbered rules file");
    assert!(order < 73, "{name} runs too late for uaccess");

    let text = std::fs::read_to_string(&files[0]).expect("read rules");
    let mut vendors = std::collections::BTreeSet::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(
            line.contains(r#"SUBSYSTEM=="usb""#),
            "not a USB rule: {line}"
        );
        assert!(
            line.contains(r#"TAG+="uaccess""#),
            "rule without uaccess: {line}"
        );
        assert!(
            !line.contains("MODE="),
            "world-accessible mode instead of uaccess: {line}"
        );
        let vendor = line
            .split(r#"ATTRS{idVendor}==""#)
            .nth(1)
            .and_then(|rest| rest.get(..4))
            .expect("rule names a vendor");
        assert!(vendor.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
        if let Some(product) = line.split(r#"ATTRS{idProduct}==""#).nth(1) {
            assert!(
                product[..4].chars().all(|c| c.is_ascii_hexdigit()),
                "{line}"
            );
            assert_eq!(&product[4..5], "\"", "product id is 4 hex digits: {line}");
        }
        vendors.insert(vendor.to_string());
    }
    assert!(vendors.contains("1050"), "YubiKey (1050) missing");
    assert!(vendors.contains("20a0"), "Nitrokey (20a0) missing");
}
