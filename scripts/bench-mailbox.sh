#!/usr/bin/env bash
# Benchmark (not a test): `cardecrypt inspect --mailbox` over a generated maildir and the same
# mail as one mbox, messages per second and peak RSS (median of RUNS, release build).
# The mail: MESSAGES (default 10000) of ordinary size from 40 correspondents over 12 months:
# 60% PGP/MIME (real gpg messages, some with a file outside, some with hidden recipients),
# 10% inline PGP, 10% signed only, 20% clear, a few KiB each, a tenth with a 30 KiB attachment.
#   scripts/bench-mailbox.sh [RUNS]      (default 5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
runs=${1:-5}
count=${MESSAGES:-10000}

install_packages
echo "==> release build"
(cd "$top" && cargo build --release --bin cardecrypt --quiet)
bin="${CARGO_TARGET_DIR:-$top/target}/release/cardecrypt"

work=$(mktemp -d)
trap 'GNUPGHOME="$work/gnupg" gpgconf --kill all 2>/dev/null || true; rm -rf "$work"' EXIT
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --import "$top/tests/data/keys/cv25519.pub.asc" 2>/dev/null
for n in 1 2 3 4; do
  head -c 3000 /dev/urandom | base64 |
    gpg --batch --quiet --trust-model always --armor -r cv25519@cardecrypt.test \
      $([ "$n" -eq 2 ] && echo --throw-keyids) --encrypt > "$work/enc$n.asc"
done

echo "==> generating $count messages"
python3 - "$work" "$count" <<'EOF'
import base64, os, random, sys
work, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
enc = [open(f"{work}/enc{n}.asc").read() for n in range(1, 5)]
months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
people = [f"person{n}@example{n % 7}.org" for n in range(40)]
maildir = f"{work}/Mail/INBOX"
for sub in ("cur", "new", "tmp"):
    os.makedirs(f"{maildir}/{sub}")
mbox = open(f"{work}/all.mbox", "w")
for i in range(count):
    who = rng.choice(people)
    month = rng.randrange(12)
    date = f"Mon, {rng.randrange(1, 29)} {months[month]} 2026 10:{i % 60:02d}:00 {rng.choice(['+0000', '+0200', '-0500'])}"
    head = (f"From: {who}\nTo: me@example.org\nSubject: message {i}\nDate: {date}\n"
            f"Message-ID: <{i}@example.org>\nReceived: from mx.example.org by imap.example.org; {date}\n"
            f"Received: from laptop (dsl [198.51.100.{i % 250}]) by mx.example.org; {date}\n"
            "MIME-Version: 1.0\n")
    kind = rng.random()
    text = "Hello,\n" + "some ordinary text in a mail body. " * 60 + "\n"
    if kind < 0.6:
        inner = ("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
                 "boundary=\"enc-boundary-00000000000001\"\n\n--enc-boundary-00000000000001\n"
                 "Content-Type: application/pgp-encrypted\n\nVersion: 1\n\n"
                 "--enc-boundary-00000000000001\nContent-Type: application/octet-stream\n\n"
                 f"{rng.choice(enc)}\n--enc-boundary-00000000000001--\n")
        if i % 10 == 0:
            blob = base64.encodebytes(os.urandom(30000)).decode()
            body = ("Content-Type: multipart/mixed; boundary=\"mix-boundary-000000000001\"\n\n"
                    f"--mix-boundary-000000000001\n{inner}\n--mix-boundary-000000000001\n"
                    "Content-Type: application/pdf; name=\"scan.pdf\"\n"
                    "Content-Transfer-Encoding: base64\n\n"
                    f"{blob}\n--mix-boundary-000000000001--\n")
        else:
            body = inner
    elif kind < 0.7:
        body = f"Content-Type: text/plain\n\n{text}\n{rng.choice(enc)}\n"
    elif kind < 0.8:
        body = ("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; "
                "boundary=\"sig-boundary-000000000001\"\n\n--sig-boundary-000000000001\n"
                f"Content-Type: text/plain\n\n{text}\n--sig-boundary-000000000001\n"
                "Content-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\n\n"
                "iQ==\n-----END PGP SIGNATURE-----\n--sig-boundary-000000000001--\n")
    else:
        body = f"Content-Type: text/plain\n\n{text}"
    mail = head + body
    with open(f"{maildir}/cur/{1700000000 + i}.M{i}P1.host:2,S", "w") as f:
        f.write(mail)
    mbox.write(f"From {who} Mon Nov  2 10:00:00 2026\n{mail}\n")
EOF
size=$(du -sm "$work/Mail/INBOX" | cut -f1)
echo "maildir: $count messages, ${size} MiB on disk"

measure() { # NAME PATH
  local times=() rss=() t
  for _ in $(seq "$runs"); do
    t=$( { /usr/bin/time -f "%e %M" "$bin" inspect --mailbox "$2" --json > /dev/null; } 2>&1 )
    times+=("${t% *}")
    rss+=("${t#* }")
  done
  local median peak
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  peak=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
  python3 -c "import sys; n, s, p = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); \
print(f'{sys.argv[4]:8} {n} messages: median {s:.2f} s over $runs runs, {n / max(s, 0.01):,.0f} messages/s, peak RSS {p / 1024:.1f} MiB')" \
    "$count" "$median" "$peak" "$1"
}
measure maildir "$work/Mail/INBOX"
measure mbox "$work/all.mbox"
