#!/usr/bin/env bash
# The images, built and run as an operator would get them (part of tests/run-all.sh):
#   bash tests/images.sh
#
# 1. images/build.sh twice, into two folders: the same commit gives the same digests.
# 2. Each OCI archive unpacked (skopeo, umoci) and its binaries run in a fresh root with the
#    image's own user: the agent's `demo` and an erasure whose certificate is rendered to PDF
#    with the font the image carries, the controller's and the plugin's `--version`. A missing
#    library, CA bundle, zone or font fails here. (podman cannot run containers in this
#    sandbox: its runtime may not set rlimits; an unpacked root and chroot run the same
#    bytes with the same user.)
# 3. Labels, SBOMs, the krew manifest's checksum, and images/pin.sh on a copy of the
#    manifests: the kustomization then names each image by its digest.
set -euo pipefail
cd "$(dirname "$0")/.."

for pkg in umoci skopeo; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg"; }
done

WORK=$(mktemp -d /var/tmp/kenko-images-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "tests/images.sh: $*" >&2; exit 1; }

bash images/build.sh "$WORK/a"
bash images/build.sh "$WORK/b"
diff -u "$WORK/a/images.txt" "$WORK/b/images.txt" \
  || fail "two builds of one commit gave different digests"
echo "reproducible: $(wc -l <"$WORK/a/images.txt") images, the same digests twice"
cmp "$WORK/a/kenko-agent-"*.cdx.json "$WORK/b/kenko-agent-"*.cdx.json || fail "SBOM differs"

OUT="$WORK/a"
VERSION=$(awk '{print $2; exit}' "$OUT/images.txt")

# unpack NAME: the image's root filesystem and its runtime configuration under WORK/NAME.
unpack() {
  local name=$1
  skopeo copy -q "oci-archive:$OUT/$name-$VERSION.oci.tar" "oci:$WORK/$name-layout:$name"
  umoci unpack --image "$WORK/$name-layout:$name" "$WORK/$name" >/dev/null
}
# run NAME ARGS...: the image's entrypoint binary, as the image's user, in its root.
run() {
  local name=$1
  shift
  local uid gid
  uid=$(jq -r '.process.user.uid' "$WORK/$name/config.json")
  gid=$(jq -r '.process.user.gid' "$WORK/$name/config.json")
  [ "$uid" = 65532 ] || fail "$name runs as uid $uid, expected 65532"
  env -i TZ=Asia/Tokyo SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt HOME=/tmp \
    /usr/sbin/chroot --userspec="$uid:$gid" "$WORK/$name/rootfs" "$@"
}

unpack kenko-agent
unpack kenko-controller

echo "== kenko-agent demo in the agent image"
out=$(cd / && run kenko-agent /usr/local/bin/kenko-agent demo --data-dir /tmp/kenko-data 2>&1) \
  || { echo "$out"; fail "kenko-agent demo failed in the image"; }
echo "$out" | tail -n 5
grep -q "fee summary" <<<"$out" || fail "the demo printed no fee summary"

echo "== an erasure certificate rendered to PDF with the image's font"
printf 'synthetic data to erase\n' >"$WORK/kenko-agent/rootfs/tmp/erase-me"
chown 65532:65532 "$WORK/kenko-agent/rootfs/tmp/erase-me"
run kenko-agent /usr/local/bin/kenko-agent erase --target file:/tmp/erase-me --data-dir /tmp/erase \
  --name "Image Test" --title "CI" --organization "kenko" >/dev/null \
  || fail "erase failed in the image"
cert=$(cd "$WORK/kenko-agent/rootfs" && find tmp/erase/certificates -name '*.json' | sort | head -n 1)
[ -n "$cert" ] || fail "no certificate written"
pdf=$(run kenko-agent /usr/local/bin/kenko-agent certificate render "/$cert" --format pdf --data-dir /tmp/erase) \
  || fail "rendering the certificate to PDF failed in the image (font?)"
head -c 5 "$WORK/kenko-agent/rootfs$(echo "$pdf" | tail -n 1)" | grep -q '%PDF-' || fail "not a PDF: $pdf"

echo "== kenko-controller and kubectl-kenko in the controller image"
v=$(run kenko-controller /usr/local/bin/kenko-controller --version) || fail "kenko-controller --version"
grep -q "kenko-controller $VERSION" <<<"$v" || fail "kenko-controller --version: $v"
v=$(run kenko-controller /usr/local/bin/kubectl-kenko --version) || fail "kubectl-kenko --version"
grep -q "kubectl-kenko $VERSION" <<<"$v" || fail "kubectl-kenko --version: $v"

echo "== labels, SBOMs, the plugin"
rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for name in kenko-agent kenko-controller; do
  labels=$(skopeo inspect --config "oci-archive:$OUT/$name-$VERSION.oci.tar")
  labels=$(jq -c '.config.Labels' <<<"$labels")
  for want in "\"org.opencontainers.image.version\":\"$VERSION\"" \
    "\"org.opencontainers.image.revision\":\"$rev\"" \
    '"org.opencontainers.image.licenses":"Apache-2.0"'; do
    grep -qF "$want" <<<"$labels" || fail "$name: label $want missing in $labels"
  done
  jq -e '.bomFormat == "CycloneDX" and (.components | length > 100)' "$OUT/$name-$VERSION.cdx.json" >/dev/null \
    || fail "$name: SBOM"
done
jq -e '[.components[].name] | index("rusqlite") and index("aws-sdk-s3")' "$OUT/kenko-agent-$VERSION.cdx.json" >/dev/null \
  || fail "the agent's SBOM lacks its crates"
sha=$(sha256sum "$OUT/kubectl-kenko-$VERSION-linux-amd64.tar.gz" | cut -d' ' -f1)
grep -q "sha256: \"$sha\"" "$OUT/krew/kenko.yaml" || fail "the krew manifest's sha256 is not the archive's"
members=$(tar -tzf "$OUT/kubectl-kenko-$VERSION-linux-amd64.tar.gz")
grep -qx kubectl-kenko <<<"$members" || fail "plugin archive: $members"

echo "== images/pin.sh: the manifests name the images by digest"
cp -r manifests "$WORK/manifests"
bash images/pin.sh registry.city.internal/kenko "$OUT/images.txt" "$WORK/manifests/kustomization.yaml"
while read -r name _ digest; do
  grep -q "newName: registry.city.internal/kenko/$name" "$WORK/manifests/kustomization.yaml" \
    && grep -q "digest: $digest" "$WORK/manifests/kustomization.yaml" \
    || fail "pin.sh did not pin $name"
done <"$OUT/images.txt"
echo "images: ok"
