#!/usr/bin/env python3
"""Release notes for a set of built model artifacts.

    python3 scripts/release-notes.py --version 0.1.0 OUT_DIR [OUT_DIR ...] > NOTES.md

Every `<artifact>.provenance.json` (in-toto Statement v1, SLSA provenance v1,
as `avac build` writes it) found in the directories gives one section: the
target, each subject file with its sha256 (checked against the file when it
is present), the provenance statement's own sha256, the avac version and
binary digest that built it, and every pinned input. The notes end with the
commands an auditor runs. Nothing is invented: a field missing from a
statement is an error.
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def section(prov):
    st = json.loads(prov.read_text())
    if st.get("_type") != "https://in-toto.io/Statement/v1" or st.get("predicateType") != "https://slsa.dev/provenance/v1":
        sys.exit(f"{prov}: not an in-toto Statement v1 with SLSA provenance v1")
    bd = st["predicate"]["buildDefinition"]
    run = st["predicate"]["runDetails"]
    target = bd["externalParameters"]["target"]
    out = [f"### `{target}`", "", "| file | sha256 |", "| --- | --- |"]
    for s in st["subject"]:
        d = s["digest"]["sha256"]
        f = prov.parent / s["name"]
        if f.is_file() and sha256(f) != d:
            sys.exit(f"{f}: sha256 {sha256(f)} but its provenance records {d}")
        out.append(f"| `{s['name']}` | `{d}` |")
    out.append(f"| `{prov.name}` (provenance) | `{sha256(prov)}` |")
    avac = next((b["digest"]["sha256"] for b in run.get("byproducts", []) if b.get("name") == "avac"), None)
    if avac is None:
        sys.exit(f"{prov}: runDetails.byproducts has no avac digest")
    out += ["", f"Built by avac {run['builder']['version']['avac']} (`{run['builder']['id']}`, binary sha256 `{avac}`) from:", ""]
    for dep in bd["resolvedDependencies"]:
        out.append(f"- `{dep['name']}`: `{dep['uri']}`, sha256 `{dep['digest']['sha256']}`")
    first = st["subject"][0]["name"]
    out += ["", f"Audit: `avac audit {first}` (with `{prov.name}` beside it) prints `verdict: reproducible`.", ""]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", required=True, help="the avac release version")
    p.add_argument("dirs", nargs="+", type=Path)
    a = p.parse_args()
    provs = sorted(f for d in a.dirs for f in d.glob("*.provenance.json"))
    if not provs:
        sys.exit("no *.provenance.json in " + ", ".join(map(str, a.dirs)))
    print(f"# avac {a.version}\n")
    print("## Binaries\n")
    print("Built by dist (`dist-workspace.toml`, `.github/workflows/release.yml`) with the `dist` cargo profile;")
    print("checksums are attached to the release. `bash scripts/repro-binary.sh` rebuilds the binary bit for bit.\n")
    print("## Model artifacts\n")
    for prov in provs:
        print(section(prov))
    print("## Verifying\n")
    print("```sh\navac audit ARTIFACT                 # rebuild from the recorded pins: reproducible / differs\navac diff ARTIFACT OTHER             # where two artifacts differ\navac hash ARTIFACT                  # sha256, SRI and Nix NAR hash for pins\n```")


if __name__ == "__main__":
    main()
