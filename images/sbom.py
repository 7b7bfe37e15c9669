#!/usr/bin/env python3
"""A CycloneDX 1.5 SBOM of what an image's binaries are built from, read off Cargo.lock.

    python3 images/sbom.py --out FILE --name IMAGE --version V --epoch SECONDS \
        [--features F,...] PACKAGE...

`cargo metadata --locked` resolves the workspace for Linux on x86_64 with the build's features (the
images build the agent with `kenko-agent/cloud`); the components are the
PACKAGEs (the binaries' crates) and every crate they reach through normal and build
dependencies (build scripts and proc-macros only run on the build machine, but they shaped the
binary, so they are listed; dev-dependencies are not). Each registry crate carries its
Cargo.lock checksum (SHA-256 of the .crate file), its purl and its declared licence. The output
is a function of Cargo.lock and the arguments only: sorted, no random serial number, the
commit's time as the timestamp, so the same commit gives the same file.
"""

import argparse
import datetime
import hashlib
import json
import subprocess
import sys

TARGET = "x86_64-unknown-linux-gnu"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("--features", default="", help="the features the binaries were built with")
    ap.add_argument("packages", nargs="+")
    a = ap.parse_args()

    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", TARGET]
            + (["--features", a.features] if a.features else [])
        )
    )
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    roots = [p["id"] for p in meta["packages"] if p["name"] in a.packages and p["source"] is None]
    missing = set(a.packages) - {pkgs[r]["name"] for r in roots}
    if missing:
        sys.exit(f"sbom.py: no workspace package named {', '.join(sorted(missing))}")

    # Every crate reached through normal and build dependencies (not dev).
    seen, todo, edges = set(), list(roots), {}
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        deps = []
        for d in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in d["dep_kinds"]):
                deps.append(d["pkg"])
                todo.append(d["pkg"])
        edges[pid] = sorted(set(deps))

    def ref(pid: str) -> str:
        p = pkgs[pid]
        return f"pkg:cargo/{p['name']}@{p['version']}"

    lock_sums = {}
    for line_pkg in read_lock("Cargo.lock"):
        if "checksum" in line_pkg:
            lock_sums[(line_pkg["name"], line_pkg["version"])] = line_pkg["checksum"]

    components = []
    for pid in sorted(seen, key=ref):
        p = pkgs[pid]
        c = {
            "type": "application" if pid in roots else "library",
            "bom-ref": ref(pid),
            "name": p["name"],
            "version": p["version"],
            "purl": ref(pid),
        }
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"]}]
        s = lock_sums.get((p["name"], p["version"]))
        if s:
            c["hashes"] = [{"alg": "SHA-256", "content": s}]
        if p["source"] is None:
            c["description"] = "kenko workspace crate"
        components.append(c)

    ts = datetime.datetime.fromtimestamp(a.epoch, datetime.timezone.utc)
    body = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "component": {
                "type": "container",
                "bom-ref": f"oci:{a.name}@{a.version}",
                "name": a.name,
                "version": a.version,
            },
            "tools": {"components": [{"type": "application", "name": "kenko images/sbom.py"}]},
        },
        "components": components,
        "dependencies": [
            {"ref": ref(pid), "dependsOn": [ref(d) for d in edges[pid]]}
            for pid in sorted(seen, key=ref)
        ],
    }
    text = json.dumps(body, indent=1, sort_keys=True) + "\n"
    # A serial number derived from the content: stable for one commit, new for another.
    digest = hashlib.sha256(text.encode()).hexdigest()
    body["serialNumber"] = "urn:uuid:" + "-".join(
        [digest[0:8], digest[8:12], "5" + digest[13:16], "8" + digest[17:20], digest[20:32]]
    )
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(json.dumps(body, indent=1, sort_keys=True) + "\n")
    print(f"   {a.out}: {len(components)} components")
    return 0


def read_lock(path: str):
    """The [[package]] tables of Cargo.lock (name, version, checksum), without a TOML library."""
    cur = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "[[package]]":
                if cur:
                    yield cur
                cur = {}
            elif cur is not None and " = " in line:
                k, v = line.split(" = ", 1)
                if v.startswith('"'):
                    cur[k] = v.strip('"')
    if cur:
        yield cur


if __name__ == "__main__":
    sys.exit(main())
