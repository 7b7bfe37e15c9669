#!/usr/bin/env bash
# Points the manifests at the images by digest, in the one place images are chosen
# (manifests/kustomization.yaml's images:), after they were pushed to a private registry:
#
#   bash images/pin.sh REGISTRY [IMAGES_TXT] [KUSTOMIZATION]
#   e.g. bash images/pin.sh 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/kenko
#
# IMAGES_TXT (default dist/images/images.txt) is what images/build.sh wrote: NAME VERSION
# DIGEST per image. Each entry becomes newName REGISTRY/NAME with that digest (no tag): the
# pods run exactly the bytes that were built, whatever the registry's tags say.
set -euo pipefail
cd "$(dirname "$0")/.."
registry=${1:?usage: images/pin.sh REGISTRY [IMAGES_TXT] [KUSTOMIZATION]}
images=${2:-dist/images/images.txt}
kust=${3:-manifests/kustomization.yaml}
registry=${registry%/}
python3 - "$registry" "$images" "$kust" <<'PY'
import re, sys
registry, images, kust = sys.argv[1:4]
digests = {}
for line in open(images, encoding="utf-8"):
    parts = line.split()
    if len(parts) == 3:
        name, _version, digest = parts
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            sys.exit(f"{images}: {name}: expected a sha256 digest")
        digests[name] = digest
text = open(kust, encoding="utf-8").read()
for name, digest in digests.items():
    entry = re.compile(
        r"(  - name: " + re.escape(name) + r"\n)((?:    (?:newName|newTag|digest): .*\n)+)"
    )
    if not entry.search(text):
        sys.exit(f"{kust}: no images: entry for {name}")
    text = entry.sub(
        lambda m: m.group(1) + f"    newName: {registry}/{name}\n    digest: {digest}\n", text, count=1
    )
open(kust, "w", encoding="utf-8").write(text)
for name, digest in sorted(digests.items()):
    print(f"{name}: {registry}/{name}@{digest}")
PY
