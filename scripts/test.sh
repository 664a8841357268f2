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
install_desktop_packages
OPENPGPJS=$(install_openpgpjs "$(dirname "$here")")
export OPENPGPJS
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
# The peer vectors are other projects' test data kept beside the repository, never in it.
peers=${CARDECRYPT_PEER_VECTORS:-$(dirname "$here")/../shared/peer-vectors}
if [ ! -f "$peers/cases.tsv" ] && [ "${CARDECRYPT_PEER_TESTS:-}" != require ]; then
  echo "peer-vector tests skipped: no $peers (other projects' test vectors from the team's shared folder; set CARDECRYPT_PEER_VECTORS to a copy)"
fi
# The pcscd tests start the cardecrypt-vcard binary: build every binary first.
cargo build --bins --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# The pcscd tier skips itself where pcscd or vpcd is missing; here it is required.
CARDECRYPT_PCSC_TESTS=require cargo test --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary. A binary that aborted before its summary has no
# "test result" line; cargo's "error: test failed" line still names it, so it counts too.
awk '/^test result:/ { p += $4; f += $6 }
     /^error: test failed/ { single += 1 }
     /^error: [0-9]+ targets? failed/ { binaries = $2 }
     END {
       if (binaries == 0) binaries = single
       printf "total: %d passed, %d failed", p, f
       if (binaries > 0) printf ", %d test binaries failed", binaries
       printf "\n"
     }' "$log"
# Every fuzz target briefly (seeded from tests/data): a regression that crashes is caught.
# scripts/fuzz.sh SECONDS runs them longer.
if [ "$status" -eq 0 ]; then
  echo "==> fuzz targets, ${CARDECRYPT_FUZZ_SECONDS:-15}s each"
  bash "$here/fuzz.sh" "${CARDECRYPT_FUZZ_SECONDS:-15}" || status=1
fi
exit "$status"
