#!/usr/bin/env bash
# The default kenko-agent build (without the `cloud` feature: no AWS SDK, no Kubernetes client),
# which the README's first command builds: it lints clean, runs the demo, and refuses each thing
# that needs AWS or the cluster with reason cloud_not_built (runbooks/cloud-not-built.md),
# changing nothing. `cargo test` covers the cloud build; this covers the other one.
#   bash tests/light-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Its own target folder: the default build's kenko-agent must never take the place of the cloud
# build's binary that the end-to-end tests run (both would be target/debug/kenko-agent).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kenko-target}/light"

cargo clippy --locked -p kenko-agent -- -D warnings
cargo build --locked -p kenko-agent
BIN="$CARGO_TARGET_DIR/debug/kenko-agent"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "light build: $*" >&2; exit 1; }

# The demo: a register, a month of deliveries, the summary.
"$BIN" --data-dir "$work/demo" demo --residents 2000 --records 200 > "$work/demo.out" \
  || fail "the demo failed: $(tail -n 5 "$work/demo.out")"
grep -q "fee summary\|委託料\|accepted" "$work/demo.out" || fail "the demo printed no summary"

# refused WHAT EXPECTED_EXIT CMD...: fails unless CMD exits EXPECTED_EXIT naming cloud_not_built.
refused() {
  local what=$1 want=$2; shift 2
  local rc=0
  "$@" > "$work/out" 2> "$work/err" || rc=$?
  [ "$rc" = "$want" ] || fail "$what: exit $rc, expected $want: $(cat "$work/err")"
  grep -q '\[reason: cloud_not_built\]' "$work/err" || fail "$what: no cloud_not_built: $(cat "$work/err")"
  [ "$(wc -l < "$work/err")" -le 2 ] || fail "$what: more than a line or two on stderr: $(cat "$work/err")"
  echo "light build: $what refused: ok"
}

refused "run --cluster" 1 "$BIN" --data-dir "$work/d1" run --cluster
refused "residency audit" 3 "$BIN" residency audit --regions ap-northeast-1
refused "the S3 inbox" 1 "$BIN" --data-dir "$work/d2" --inbox s3://kenko-intake/city/ intake run-once
refused "a KMS-wrapped data key" 1 "$BIN" --data-dir "$work/d3" \
  --kms-key-arn arn:aws:kms:ap-northeast-1:111122223333:key/mrk-1 intake run-once

# An erasure job with a cloud target is refused whole: its file target is left as it was.
mkdir -p "$work/e"
printf 'keep me\n' > "$work/e/file"
refused "erasing s3://" 1 "$BIN" --data-dir "$work/e/data" erase \
  --name "Sato (synthetic)" --target "file:$work/e/file" --target s3://kenko-records/city/
[ "$(cat "$work/e/file")" = "keep me" ] || fail "the refused job touched its file target"
[ ! -d "$work/e/data/certificates" ] || [ -z "$(ls -A "$work/e/data/certificates")" ] \
  || fail "the refused job issued a certificate"
echo "light build: ok"
