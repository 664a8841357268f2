#!/usr/bin/env bash
# The README's second command: installs what is needed and runs every test.
#  - unit tests and in-process tests against the virtual card (no daemon);
#  - whole-process tests through a real pcscd + vpcd with the real gpg (tests/pcsc.rs starts
#    pcscd itself, or reuses one that has the vpcd reader, and stops only what it started);
#  - rustfmt and clippy, warnings as errors.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
cd "$(dirname "$here")"

install_packages
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
# The pcscd tests start the cardecrypt-vcard binary: build every binary first.
cargo build --workspace --bins --quiet
cargo test --workspace
