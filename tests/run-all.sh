#!/usr/bin/env bash
# kenko's test command: every set-up step a fresh machine needs, then every test.
#   bash tests/run-all.sh
# It creates the Python venv for the offline checkers, starts the local PostgreSQL when it is
# down, and runs formatting, lints and the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kenko-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "Python venv (offline checkers and emulators used by the tests)"
VENV="${KENKO_VENV:-/var/tmp/kenko-venv}"
REQS=tests/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if grep -qvE '^\s*(#|$)' "$REQS"; then
  stamp="$VENV/.kenko-requirements.sha256"
  want=$(sha256sum "$REQS" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    echo "$want" > "$stamp"
  fi
fi
export PATH="$VENV/bin:$PATH"

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 60); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 0.5
  done
  pg_isready -h 127.0.0.1 -p 5432
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace
