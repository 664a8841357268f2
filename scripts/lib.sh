# Shared by the README's commands: installing what cardecrypt needs, and pcscd handling.
# shellcheck shell=bash

# Debian packages: the PC/SC daemon and library, the vpcd reader driver for the virtual
# card, libclang for littlefs2-sys (the virtual card's storage), gpg for interop, neomutt
# and tmux to test cardecrypt inside a real mail client, rnp for the tag-20 OCB packet, GNU
# time for peak memory; python3-gpg (GPGME), notmuch and emacs-nox (EasyPG) for cardecrypt-gpg.
PACKAGES=(pcscd vsmartcard-vpcd libpcsclite-dev libclang-dev pkg-config gnupg scdaemon gpg-agent pinentry-curses neomutt mutt tmux rnp time python3-gpg notmuch emacs-nox chromium tesseract-ocr dbus-daemon dbus-bin aerc)
# The desktop mail clients under Xvfb: Thunderbird (driven through Marionette), Claws Mail
# with its PGP/MIME plugin and Evolution (read through AT-SPI: python3-pyatspi,
# at-spi2-core). Without their recommendations (help browsers, spam filters, ...).
DESKTOP_PACKAGES=(xvfb thunderbird claws-mail claws-mail-pgpmime evolution python3-pyatspi at-spi2-core)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The packages of the given names that are not installed.
missing_packages() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# Installs those of the named packages that are missing; apt-get options first, then `--`.
install_missing() {
  local options=()
  while [ "$1" != -- ]; do options+=("$1"); shift; done
  shift
  local missing
  mapfile -t missing < <(missing_packages "$@")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" \
      "${missing[@]}" >/dev/null
  fi
}

install_packages() {
  install_missing -- "${PACKAGES[@]}"
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust >= 1.85 (https://rustup.rs), then run this again" >&2
    exit 1
  fi
}

# The desktop clients, for the tests only.
install_desktop_packages() {
  install_missing --no-install-recommends -- "${DESKTOP_PACKAGES[@]}"
}

# OpenPGP.js, for tests that need messages and keys from another implementation: installed
# from the npm registry into target/openpgpjs (not the system), with Node.js from Debian if
# the machine has none. Prints the path of its ESM build for OPENPGPJS (OpenPGP.js 5 is beside
# it, in node_modules/openpgp5).
OPENPGPJS_VERSION=6.3.2
OPENPGPJS5_VERSION=5.11.2
install_openpgpjs() {
  local top=$1 dir="$1/target/openpgpjs"
  if ! command -v npm >/dev/null; then
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  local entry="$dir/node_modules/openpgp/dist/node/openpgp.mjs"
  local entry5="$dir/node_modules/openpgp5/dist/node/openpgp.mjs"
  if [ ! -f "$entry" ] || [ ! -f "$entry5" ]; then
    mkdir -p "$dir"
    # OpenPGP.js 6 (RFC 9580), and 5 under the name openpgp5: 5 writes GnuPG's tag-20
    # AEAD packet, 6 no longer does.
    npm install --prefix "$dir" --silent --no-audit --no-fund "openpgp@$OPENPGPJS_VERSION" \
      "openpgp5@npm:openpgp@$OPENPGPJS5_VERSION" >/dev/null
  fi
  echo "$entry"
}

VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
VPCD_READER="Virtual PCD 00 00"

# Is a pcscd answering on this machine?
pcscd_running() {
  # Zombies (a pcscd killed but not yet reaped) do not count.
  ps -C pcscd -o stat= 2>/dev/null | grep -qv '^Z'
}
