#!/usr/bin/env bash
# kenko's container images, built offline with the tools Debian ships (buildah, skopeo), into
# OCI archives an operator carries into the closed network:
#
#   bash images/build.sh [OUT]          # default OUT: dist/images
#
# OUT/kenko-agent-VERSION.oci.tar       the agent (node DaemonSet and every stack's intake)
# OUT/kenko-controller-VERSION.oci.tar  the controller, with kubectl-kenko beside it
# OUT/*.cdx.json                        a CycloneDX SBOM per image, from Cargo.lock
# OUT/kubectl-kenko-VERSION-linux-amd64.tar.gz and OUT/krew/kenko.yaml
#                                       the kubectl plugin and its krew manifest (offline install)
# OUT/images.txt                        NAME VERSION DIGEST of each image (images/pin.sh reads it)
#
# Both images are FROM scratch: no base image is pulled. Each holds its release binaries,
# exactly the shared libraries they link (read off ldd, at the paths the loader looks them
# up), the CA bundle, Asia/Tokyo's zone, /etc/passwd with the non-root user 65532, and (the
# agent) the IPAGothic font its PDF certificates are rendered with. Every timestamp is the
# commit's, so one commit builds one digest, twice (tests/images.sh checks it).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=$(realpath -m "${1:-dist/images}")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kenko-target}"

need=()
for pkg in buildah skopeo jq fonts-ipafont-gothic ca-certificates tzdata; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"; }
fi

meta=$(cargo metadata --no-deps --format-version 1 --locked)
VERSION=$(jq -r '.packages[] | select(.name == "kenko-agent") | .version' <<<"$meta")
SOURCE=$(jq -r '.packages[] | select(.name == "kenko-agent") | .repository' <<<"$meta")
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time (not the build's): files, layers and the image's creation date.
EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
FONT=/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf

echo "== release build (kenko-agent, kenko-controller, kubectl-kenko)"
# The images run in the cluster: the agent with its `cloud` feature (AWS SDK, Kubernetes client).
cargo build --release --locked -p kenko-agent -p kenko-controller -p kubectl-kenko --features kenko-agent/cloud
BIN="$CARGO_TARGET_DIR/release"

mkdir -p "$OUT"
rm -rf "$OUT/stage" "$OUT/images.txt"

# stage NAME BINARY...: the rootfs of one image under OUT/stage/NAME/rootfs.
stage() {
  local name=$1
  shift
  local root="$OUT/stage/$name/rootfs"
  mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/usr/share/zoneinfo/Asia" "$root/tmp"
  chmod 1777 "$root/tmp"
  local b lib
  for b in "$@"; do
    install -m 0755 "$BIN/$b" "$root/usr/local/bin/$b"
  done
  # Exactly what the binaries link, and the loader, where the binaries look for them.
  for b in "$@"; do ldd "$BIN/$b"; done | grep -o '/[^ ]*' | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cp -L /usr/share/zoneinfo/Asia/Tokyo "$root/usr/share/zoneinfo/Asia/Tokyo"
  ln -s ../usr/share/zoneinfo/Asia/Tokyo "$root/etc/localtime"
  printf 'root:x:0:0:root:/:/nonexistent\nkenko:x:65532:65532:kenko:/tmp:/nonexistent\n' >"$root/etc/passwd"
  printf 'root:x:0:\nkenko:x:65532:\n' >"$root/etc/group"
  # The licence the label names, where licence scanners look for it.
  mkdir -p "$root/usr/share/doc/kenko"
  cp LICENSE "$root/usr/share/doc/kenko/LICENSE"
  cp "images/$name.Containerfile" "$OUT/stage/$name/Containerfile"
}

stage kenko-agent kenko-agent
mkdir -p "$OUT/stage/kenko-agent/rootfs$(dirname "$FONT")"
cp -L "$FONT" "$OUT/stage/kenko-agent/rootfs$FONT"
stage kenko-controller kenko-controller kubectl-kenko
# One time on every file, so the layer does not depend on when it was staged.
find "$OUT/stage" -exec touch -h -d "@$EPOCH" {} +

# A private image store under OUT: nothing of the machine's own podman/buildah is touched.
B=(buildah --root "$OUT/.storage" --runroot "$OUT/.run" --storage-driver vfs)
for name in kenko-agent kenko-controller; do
  echo "== image $name $VERSION"
  "${B[@]}" bud --quiet --timestamp "$EPOCH" --layers=false --pull=never \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg SOURCE="$SOURCE" \
    -f "$OUT/stage/$name/Containerfile" -t "localhost/$name:$VERSION" "$OUT/stage/$name" >/dev/null
  archive="$OUT/$name-$VERSION.oci.tar"
  rm -f "$archive"
  "${B[@]}" push --quiet "localhost/$name:$VERSION" "oci-archive:$archive:$name:$VERSION"
  "${B[@]}" rmi --force "localhost/$name:$VERSION" >/dev/null
  digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$archive")
  echo "$name $VERSION $digest" >>"$OUT/images.txt"
  echo "   $archive $digest"
done

echo "== SBOMs (CycloneDX, from Cargo.lock)"
python3 images/sbom.py --out "$OUT/kenko-agent-$VERSION.cdx.json" --name kenko-agent \
  --version "$VERSION" --epoch "$EPOCH" --features kenko-agent/cloud kenko-agent
python3 images/sbom.py --out "$OUT/kenko-controller-$VERSION.cdx.json" --name kenko-controller \
  --version "$VERSION" --epoch "$EPOCH" kenko-controller kubectl-kenko

echo "== kubectl plugin and its krew manifest"
plugin="$OUT/kubectl-kenko-$VERSION-linux-amd64.tar.gz"
pdir="$OUT/stage/plugin"
mkdir -p "$pdir"
install -m 0755 "$BIN/kubectl-kenko" "$pdir/kubectl-kenko"
cp LICENSE "$pdir/LICENSE"
touch -h -d "@$EPOCH" "$pdir"/*
tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner -C "$pdir" -cf - kubectl-kenko LICENSE \
  | gzip -n -9 >"$plugin"
sha=$(sha256sum "$plugin" | cut -d' ' -f1)
mkdir -p "$OUT/krew"
sed -e "s/@VERSION@/$VERSION/g" -e "s/@SHA256@/$sha/g" images/krew-kenko.yaml >"$OUT/krew/kenko.yaml"
echo "   $plugin sha256:$sha"
rm -rf "$OUT/stage" "$OUT/.storage" "$OUT/.run"
echo "== done: $OUT/images.txt"
cat "$OUT/images.txt"
