//! Brainpool keys made by gpg, on the virtual card (whose brainpool arithmetic is ours, in
//! software: trussed's virtual platform has none): `card import` of gpg's secret key, then
//! gpg's own `keytocard` of the same subkey, each followed by a gpg message that cardecrypt
//! decrypts on the card.

use super::*;

/// gpg's name of each curve, and the user id of its key.
const CURVES: [(&str, &str); 2] = [
    ("brainpoolP256r1", "bp256@cardecrypt.test"),
    ("brainpoolP384r1", "bp384@cardecrypt.test"),
];

pub fn brainpool_keys_from_gpg_import_and_decrypt(env: &Env) {
    let loopback = ["--pinentry-mode", "loopback", "--passphrase", ""];
    for (curve, uid) in CURVES {
        let fpr = gpg_makes_a_key(env, curve, uid);
        let mut args = loopback.to_vec();
        args.extend(["--armor", "--export-secret-keys", &fpr]);
        let secret = env.gpg(&args, b"");
        assert_ok(&secret, "gpg --export-secret-keys");
        let file = env.path(&format!("{curve}.sec.asc"));
        std::fs::write(&file, &secret.stdout).expect("write key");
        let import = env.import_file_to_card(&file);
        assert!(
            text(&import.stderr).contains("cannot check"),
            "{curve}: card import said nothing of the unchecked binding: {}",
            text(&import.stderr)
        );
        decrypts_a_gpg_message_to(env, uid, curve);

        // Now gpg moves the same subkey there itself, over a NIST key put in the slot first.
        env.import_to_card("nistp256");
        keytocard(env, &fpr);
        decrypts_a_gpg_message_to(env, uid, &format!("{curve} after keytocard"));
        env.stop_gpg();
        let _ = env.gpg(&["--yes", "--delete-secret-and-public-key", &fpr], b"");
    }
}

/// A key on `curve` (ECDSA primary, ECDH subkey) in the tests' gpg home; its fingerprint.
fn gpg_makes_a_key(env: &Env, curve: &str, uid: &str) -> String {
    let loopback = ["--pinentry-mode", "loopback", "--passphrase", ""];
    let mut args = loopback.to_vec();
    args.extend(["--quick-gen-key", uid, curve, "cert", "never"]);
    assert_ok(&env.gpg(&args, b""), &format!("gpg makes a {curve} key"));
    let listed = env.gpg(&["--with-colons", "--list-keys", uid], b"");
    let fpr = text(&listed.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_string())
        })
        .expect("fingerprint");
    let mut args = loopback.to_vec();
    args.extend(["--quick-add-key", &fpr, curve, "encr", "never"]);
    assert_ok(&env.gpg(&args, b""), &format!("gpg adds a {curve} subkey"));
    fpr
}

fn keytocard(env: &Env, fpr: &str) {
    env.stop_gpg();
    assert_ok(&env.gpg_keytocard(fpr), "gpg keytocard");
    env.stop_gpg();
}

fn decrypts_a_gpg_message_to(env: &Env, uid: &str, what: &str) {
    let plain = format!("brainpool: {what}\n");
    let enc = env.gpg(&["-e", "-r", uid], plain.as_bytes());
    assert_ok(&enc, &format!("gpg -e to {what}"));
    let out = env.cardecrypt_with_pin(&[], &enc.stdout);
    assert_ok(&out, what);
    assert_eq!(text(&out.stdout), plain, "{what}");
}
