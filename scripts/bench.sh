#!/usr/bin/env bash
# Benchmark (not a test): APDUs per decrypt and median wall time, on one virtual card through
# pcscd, for
#   - cardecrypt, a fresh process per decrypt, PIN from a file;
#   - gpg -d with gpg-agent and scdaemon already running (the card stays unlocked);
#   - gpg -d with the agent restarted before each run.
# Release build. Needs no pcscd running, or one with the vpcd reader and no card in it.
#   scripts/bench.sh [RUNS]     (default 21)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
runs=${1:-21}

install_packages
echo "==> release build"
(cd "$top" && cargo build --release --workspace --quiet)
bin="$top/target/release"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  GNUPGHOME="$work/gnupg" gpgconf --kill all 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! pcscd_running; then
  mkdir -p "$work/readers"
  printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH %s\nCHANNELID 0x8C7B\n' \
    "$VPCD_DRIVER" > "$work/readers/vpcd"
  if [ "$(id -u)" -eq 0 ]; then pcscd --foreground --config "$work/readers" >/dev/null 2>&1 &
  else sudo pcscd --foreground --config "$work/readers" >/dev/null 2>&1 & fi
  pids+=($!)
  sleep 1
fi
"$bin/cardecrypt-vcard" --state "$work/card" --serial 0000BE4C --count-apdus "$work/apdus" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do "$bin/cardecrypt" card list 2>/dev/null | grep -q FFFE:0000BE4C && break; sleep 0.1; done

keys="$top/tests/data/keys"
printf '12345678\n' > "$work/admin"; printf '123456\n' > "$work/pin"
"$bin/cardecrypt" card import --batch --replace --admin-pin-file "$work/admin" "$keys/cv25519.sec.asc" >/dev/null 2>&1
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
printf 'disable-ccid\npcsc-shared\n' > "$GNUPGHOME/scdaemon.conf"
echo allow-loopback-pinentry > "$GNUPGHOME/gpg-agent.conf"
gpg --batch --quiet --import "$keys/cv25519.pub.asc" 2>/dev/null
gpg --batch --quiet --card-status >/dev/null 2>&1
head -c 4096 /dev/urandom | base64 | gpg --batch --quiet --trust-model always -e -r cv25519@cardecrypt.test > "$work/msg.gpg" 2>/dev/null
export XDG_CACHE_HOME="$work/cache"

apdus() { cat "$work/apdus" 2>/dev/null || echo 0; }

# bench NAME PAUSE PREPARE COMMAND: prints APDUs of the last run and the median wall time.
# PAUSE 0.8 lets pcscd power the card off between runs, as between two mails read minutes
# apart (about 0.5 s after the last program disconnects); 0 runs back to back.
bench() {
  local name=$1 pause=$2 prepare=$3 cmd=$4 times=() a0 a1
  eval "$cmd" >/dev/null 2>&1   # warm-up (fills caches: gpg agent, public key cache)
  for _ in $(seq "$runs"); do
    eval "$prepare"
    sleep "$pause"
    a0=$(apdus)
    local t0 t1
    t0=$(date +%s%N)
    eval "$cmd" >/dev/null 2>&1 || { echo "$name: run failed" >&2; exit 1; }
    t1=$(date +%s%N)
    a1=$(apdus)
    times+=($(( (t1 - t0) / 1000 )))
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  awk -v n="$name" -v a="$((a1 - a0))" -v m="$median" 'BEGIN{printf "| %-38s | %5s | %7.1f ms |\n", n, a, m / 1000}'
}

echo
echo "| tool ($runs runs, cv25519, virtual card via pcscd) | APDUs | median |"
echo "|---|---|---|"
cardecrypt="'$bin/cardecrypt' --batch --pin-file '$work/pin' '$work/msg.gpg'"
gpg_d="gpg --batch --pinentry-mode loopback --passphrase 123456 -d '$work/msg.gpg'"
bench "cardecrypt, card powered off between" 0.8 ":" "$cardecrypt"
bench "cardecrypt, back to back" 0 ":" "$cardecrypt"
bench "gpg -d, agent running" 0.8 ":" "$gpg_d"
bench "gpg -d, agent restarted" 0.8 "gpgconf --kill all" "$gpg_d"
