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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (libtest's and the pcscd harness's counts).
awk '/^test result:/ { p += $4; f += $6 }
     /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
