#!/usr/bin/env bash
# Benchmark (not a test): APDUs per decrypt and median wall time, on one virtual card through
# pcscd, for
#   - cardecrypt, a fresh process per decrypt, PIN from a file;
#   - gpg -d with gpg-agent and scdaemon already running (the card stays unlocked);
#   - gpg -d with the agent restarted before each run.
# and then bulk throughput (MiB/s, peak RSS, ratio to gpg) on BENCH_MIB (default 256) MiB
# messages: SEIPD v1 binary and armored, to -o and to stdout (stdout: two passes, as nothing
# may be written before the MDC is checked), zlib, SEIPD v2 OCB (made by Sequoia), GnuPG's
# tag-20 OCB packet (made by rnp).
# Release build. Needs no pcscd running, or one with the vpcd reader and no card in it.
#   scripts/bench.sh [RUNS] [BULK_RUNS]     (default 21 and 5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
runs=${1:-21}
bulk_runs=${2:-5}
mib=${BENCH_MIB:-256}

install_packages
echo "==> release build"
(cd "$top" && cargo build --release --bins --examples --quiet)
bin="${CARGO_TARGET_DIR:-$top/target}/release"

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
export XDG_RUNTIME_DIR="$work/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"

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
# A kept session: the first decrypt sends the PIN and starts the holder; each later one finds
# the card unlocked and extends the holder over its socket.
"$bin/cardecrypt" --batch --pin-file "$work/pin" --keep-unlocked 10m "$work/msg.gpg" >/dev/null 2>&1
bench "cardecrypt, kept unlocked (no PIN)" 0 ":" "'$bin/cardecrypt' --batch --keep-unlocked 10m '$work/msg.gpg'"
"$bin/cardecrypt" lock >/dev/null 2>&1

# ---------------------------------------------------------------- a mailbox indexed
# notmuch indexing BENCH_MAILS (default 100) PGP/MIME card messages with index.decrypt=true:
# through cardecrypt-gpg (GPGME finds it through the gpgconf link) with keep-unlocked, and
# through gpg + scdaemon (pcsc-shared) on the same card, each with the card unlocked once
# before (one PIN per session, as a user has it).
mails=${BENCH_MAILS:-100}
echo
echo "==> notmuch new with index.decrypt=true, $mails card messages"
maildir="$work/Mail"
mkdir -p "$maildir/cur" "$maildir/new" "$maildir/tmp"
for i in $(seq "$mails"); do
  {
    printf 'From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: card %s\n' "$i"
    printf 'Message-ID: <bench-%s@example.org>\nMIME-Version: 1.0\n' "$i"
    printf 'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\n\n'
    printf -- '--b\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n--b\n'
    printf 'Content-Type: application/octet-stream\n\n'
    printf 'Content-Type: text/plain\n\nsecret number %s\n' "$i" |
      gpg --batch --quiet --trust-model always -a -e -r cv25519@cardecrypt.test
    printf '\n--b--\n'
  } > "$maildir/cur/$i:2,S"
done
printf '[database]\npath=%s\n[user]\nname=Bob\nprimary_email=bob@example.org\n[index]\ndecrypt=true\n' \
  "$maildir" > "$work/notmuch-config"
index_s() {
  rm -rf "$maildir/.notmuch"
  local t0 t1
  t0=$(date +%s%N)
  NOTMUCH_CONFIG="$work/notmuch-config" notmuch new --quiet >/dev/null 2>&1 || { echo "notmuch new failed" >&2; exit 1; }
  t1=$(date +%s%N)
  local found
  found=$(NOTMUCH_CONFIG="$work/notmuch-config" notmuch count 'secret number' 2>/dev/null)
  [ "$found" -eq "$mails" ] || { echo "only $found of $mails messages indexed decrypted" >&2; exit 1; }
  awk -v t=$(( (t1 - t0) / 1000 )) 'BEGIN{printf "%.2f", t / 1e6}'
}
# gpg + scdaemon: the agent asks a pinentry once (a script that answers the PIN).
printf '#!/bin/sh\necho OK\nwhile read -r c r; do case "$c" in GETPIN) echo "D 123456"; echo OK;; BYE) echo OK; exit 0;; *) echo OK;; esac; done\n' \
  > "$work/pinentry"
chmod 755 "$work/pinentry"
printf 'pinentry-program %s\n' "$work/pinentry" > "$GNUPGHOME/gpg-agent.conf"
gpgconf --kill all
gpg --batch --quiet -d "$work/msg.gpg" >/dev/null 2>&1
gpg_index=$(index_s)
gpgconf --kill all
"$bin/cardecrypt" lock >/dev/null 2>&1
# cardecrypt-gpg: the shim's links first on PATH; an agent that cannot reach the card.
"$bin/cardecrypt" gpg-shim install --dir "$work/shim" >/dev/null 2>&1
printf 'scdaemon-program /bin/false\n' > "$GNUPGHOME/gpg-agent.conf"
"$bin/cardecrypt" --batch --pin-file "$work/pin" --keep-unlocked 10m "$work/msg.gpg" >/dev/null 2>&1
ours_index=$(PATH="$work/shim:$PATH" CARDECRYPT_KEEP_UNLOCKED=10m index_s)
"$bin/cardecrypt" lock >/dev/null 2>&1
# Back to gpg's own card access for the rows below.
echo allow-loopback-pinentry > "$GNUPGHOME/gpg-agent.conf"
gpgconf --kill all
gpg --batch --quiet --card-status >/dev/null 2>&1
echo "| notmuch new, $mails card messages decrypted | cardecrypt-gpg + keep-unlocked | gpg + scdaemon | ratio |"
echo "|---|---|---|---|"
awk -v a="$ours_index" -v b="$gpg_index" 'BEGIN{printf "| seconds | %.2f s | %.2f s | %.2fx |\n", a, b, b / a}'

# ---------------------------------------------------------------- bulk throughput
# median_run CMD: median wall seconds over $bulk_runs runs, and the peak RSS (KiB) of the
# last one (GNU time's %M). The -o target is removed before each run, untimed: both tools
# then write a new file into memory the kernel just freed. (Overwriting differs: gpg --yes
# truncates the old file first and reuses its pages, while cardecrypt keeps the old file
# until the new one is authenticated, so it writes into pages not used before; on a VM such
# pages can cost a host page fault each, up to 0.8 s of system time for 256 MiB.)
median_run() {
  local cmd=$1 times=() rss=0 t0 t1
  for _ in $(seq "$bulk_runs"); do
    rm -f "$work/out"
    t0=$(date +%s%N)
    /usr/bin/time -f %M -o "$work/rss" bash -c "$cmd" >/dev/null 2>&1 || { echo "failed: $cmd" >&2; exit 1; }
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
    rss=$(tail -n 1 "$work/rss")
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  echo "$median $rss"
}

echo
echo "==> making ${mib} MiB messages"
head -c $((mib << 20)) /dev/urandom > "$work/big.plain"
head -c $((mib * 3 / 4 << 20)) "$work/big.plain" | base64 -w 76 > "$work/big.text"
enc="gpg --batch --quiet --trust-model always -r cv25519@cardecrypt.test --cipher-algo AES256"
$enc -z 0 -e -o "$work/big.gpg" "$work/big.plain"
$enc -z 0 -a -e -o "$work/big.asc" "$work/big.plain"
$enc --compress-algo zlib -z 6 -e -o "$work/big.zlib.gpg" "$work/big.text"
"$bin/examples/seal" "$keys/cv25519.pub.asc" ocb < "$work/big.plain" > "$work/big.v2ocb.pgp"
mkdir -m 700 "$work/rnp"
rnpkeys --homedir "$work/rnp" --import "$keys/cv25519.pub.asc" >/dev/null 2>&1
rnp --homedir "$work/rnp" --encrypt --aead=ocb -z 0 -r cv25519@cardecrypt.test \
  --output "$work/big.tag20.gpg" "$work/big.plain" >/dev/null 2>&1
rm -f "$work/big.text"
# Warm the page cache and the key cache.
cat "$work"/big.* > /dev/null
"$bin/cardecrypt" --batch --pin-file "$work/pin" "$work/msg.gpg" >/dev/null 2>&1

cd_run="'$bin/cardecrypt' --batch --pin-file '$work/pin'"
gpg_run="gpg --batch --pinentry-mode loopback --passphrase 123456 -d"
echo
# The messages just written are still being flushed to disk: let that finish first, so the
# first rows do not measure the writeback.
sync
echo "| ${mib} MiB, $bulk_runs runs, median | cardecrypt MiB/s | peak RSS | gpg 2.2 MiB/s | ratio |"
echo "|---|---|---|---|---|"
row() {
  local name=$1 ours=$2 theirs=$3
  read -r t_ours rss_ours < <(median_run "$ours")
  local line
  line=$(awk -v n="$name" -v m="$mib" -v t="$t_ours" -v r="$rss_ours" \
    'BEGIN{printf "| %-34s | %7.0f | %5.1f MiB |", n, m / (t / 1e6), r / 1024}')
  if [ -n "$theirs" ]; then
    # cardecrypt made the card forget the PIN it sent; the agent and scdaemon, which caches
    # that it verified, are restarted and warmed up (untimed) before gpg's runs.
    gpgconf --kill all
    gpg --batch --quiet --card-status >/dev/null 2>&1 || true
    bash -c "$theirs" >/dev/null 2>&1 || true
    read -r t_theirs _ < <(median_run "$theirs")
    awk -v l="$line" -v m="$mib" -v a="$t_ours" -v b="$t_theirs" \
      'BEGIN{printf "%s %7.0f | %.2fx |\n", l, m / (b / 1e6), b / a}'
  else
    echo "$line  (gpg 2.2 cannot) | - |"
  fi
}
row "SEIPDv1 binary, -o FILE" "$cd_run -o '$work/out' '$work/big.gpg'" "$gpg_run -o '$work/out' '$work/big.gpg'"
row "SEIPDv1 binary, file -> stdout" "$cd_run '$work/big.gpg' > /dev/null" "$gpg_run '$work/big.gpg' > /dev/null"
row "SEIPDv1 binary, stdin pipe -> pipe" "cat '$work/big.gpg' | $cd_run | cat > /dev/null" "cat '$work/big.gpg' | $gpg_run | cat > /dev/null"
row "SEIPDv1 armored, -o FILE" "$cd_run -o '$work/out' '$work/big.asc'" "$gpg_run -o '$work/out' '$work/big.asc'"
row "SEIPDv1 armored, file -> stdout" "$cd_run '$work/big.asc' > /dev/null" "$gpg_run '$work/big.asc' > /dev/null"
row "SEIPDv1 zlib, stdout" "$cd_run '$work/big.zlib.gpg' > /dev/null" "$gpg_run '$work/big.zlib.gpg' > /dev/null"
row "SEIPDv2 OCB (Sequoia), -o FILE" "$cd_run -o '$work/out' '$work/big.v2ocb.pgp'" ""
row "SEIPDv2 OCB (Sequoia), stdout" "$cd_run '$work/big.v2ocb.pgp' > /dev/null" ""
row "tag-20 OCB (rnp), -o FILE" "$cd_run -o '$work/out' '$work/big.tag20.gpg'" ""
row "tag-20 OCB (rnp), stdout" "$cd_run '$work/big.tag20.gpg' > /dev/null" ""

# cardecrypt-gpg passes everything that is not a card decryption to the real gpg: its cost
# there is one exec. Median of $runs runs each, in ms.
echo
echo "==> gpg --list-keys: the real gpg, and through cardecrypt-gpg"
ln -sf "$bin/cardecrypt-gpg" "$work/gpg"
wall_ms() {
  local cmd=$1 times=() t0 t1
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N); bash -c "$cmd" >/dev/null 2>&1; t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{printf "%.2f", a[int((NR+1)/2)] / 1000}'
}
real_ms=$(wall_ms "$(command -v gpg) --list-keys")
front_ms=$(wall_ms "'$work/gpg' --list-keys")
echo "| --list-keys | real gpg ${real_ms} ms | through cardecrypt-gpg ${front_ms} ms |"
