#!/usr/bin/env bash
# The README's first command: installs what is needed, builds, starts pcscd and a virtual
# OpenPGP card, puts a fresh key on the card, encrypts a message to it with gpg and decrypts
# it with `cardecrypt < message.asc`.
#
#   scripts/demo.sh         set up and run the demo (again: reuses what is running)
#   scripts/demo.sh stop    stop the virtual card, and pcscd if the demo started it
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

state=${CARDECRYPT_DEMO_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/cardecrypt-demo}
mkdir -p "$state"

stop() {
  for name in vcard pcscd; do
    if [ -f "$state/$name.pid" ]; then
      pid=$(cat "$state/$name.pid")
      kill "$pid" 2>/dev/null && echo "stopped $name (PID $pid)"
      rm -f "$state/$name.pid"
    fi
  done
}

if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi

install_packages
echo "==> building (first time: several minutes)"
(cd "$top" && cargo build --quiet)
# Where cargo put the binaries (CARGO_TARGET_DIR, if set, moves them).
bin="${CARGO_TARGET_DIR:-$top/target}/debug"

# pcscd: reuse a running one if it has the vpcd reader; otherwise start one that loads vpcd.
if pcscd_running; then
  # With or without a card, `card list` names the readers pcscd has.
  if ! "$bin/cardecrypt" card list 2>&1 | grep -q "Virtual PCD"; then
    echo "a pcscd without the vpcd reader is running; stop it (sudo systemctl stop pcscd.socket pcscd) and run again" >&2
    exit 1
  fi
  echo "==> using the running pcscd"
else
  mkdir -p "$state/readers"
  printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH %s\nCHANNELID 0x8C7B\n' \
    "$VPCD_DRIVER" > "$state/readers/vpcd"
  echo "==> starting pcscd with the vpcd reader"
  # Started directly (not through a shell function) so that $! is pcscd's own PID.
  if [ "$(id -u)" -eq 0 ]; then
    pcscd --foreground --config "$state/readers" >/dev/null 2>&1 &
  else
    sudo pcscd --foreground --config "$state/readers" >/dev/null 2>&1 &
  fi
  echo $! > "$state/pcscd.pid"
  sleep 1
fi

# The virtual card, persistent in $state/card.
if [ -f "$state/vcard.pid" ] && kill -0 "$(cat "$state/vcard.pid")" 2>/dev/null; then
  echo "==> virtual card already attached"
else
  echo "==> attaching the virtual card (test keys only!)"
  "$bin/cardecrypt-vcard" --state "$state/card" --serial 00000001 >/dev/null 2>&1 &
  echo $! > "$state/vcard.pid"
  for _ in $(seq 50); do
    "$bin/cardecrypt" card list 2>/dev/null | grep -q FFFE:00000001 && break
    sleep 0.1
  done
fi

# A demo key made by gpg, put on the card with cardecrypt.
export GNUPGHOME="$state/gnupg"
if [ ! -f "$state/demo.sec.asc" ]; then
  mkdir -p -m 700 "$GNUPGHOME"
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "Demo User <demo@cardecrypt.test>" ed25519 sign never
  fpr=$(gpg --list-keys --with-colons demo@cardecrypt.test | awk -F: '/^fpr/{print $10; exit}')
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-add-key "$fpr" cv25519 encr never
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' --export-secret-keys -a demo@cardecrypt.test > "$state/demo.sec.asc"
fi
printf '12345678\n' > "$state/admin-pin"
printf '123456\n' > "$state/user-pin"
chmod 600 "$state/admin-pin" "$state/user-pin"
if ! "$bin/cardecrypt" card list | grep -q "$(gpg --list-keys --with-colons demo@cardecrypt.test | awk -F: '/^fpr/{f=$10} END{print f}')"; then
  echo "==> importing the demo key onto the card (admin PIN 12345678)"
  "$bin/cardecrypt" card import --batch --replace --admin-pin-file "$state/admin-pin" "$state/demo.sec.asc"
fi
# The private key now lives on the card only.
gpg --batch --yes --quiet --delete-secret-keys "$(gpg --list-keys --with-colons demo@cardecrypt.test | awk -F: '/^fpr/{print $10; exit}')" 2>/dev/null || true

echo "Hello from cardecrypt: this text was decrypted by the card's key." |
  gpg --batch --quiet --trust-model always -e -a -r demo@cardecrypt.test 2>/dev/null > "$state/message.asc"

echo "==> cardecrypt < $state/message.asc"
if [ -t 0 ] && [ -t 1 ]; then
  echo "    (the demo card's user PIN is 123456)"
  "$bin/cardecrypt" < "$state/message.asc"
else
  "$bin/cardecrypt" --pin-file "$state/user-pin" < "$state/message.asc"
fi
echo "==> done. Try: $bin/cardecrypt card list    Stop: scripts/demo.sh stop"
