#!/usr/bin/env python3
"""check_layers.py - the include rules of docs/design-notes.md, checked on the
source tree:

- core/'s folders are layers, in the order core/CMakeLists.txt lists them
  ("# folder/: ..." comments): a file includes headers of its own folder or
  of folders listed before it, never after (so the folders form no cycle);
- core/ never includes the C ABI (capi/, paca/*.h) nor cuda/;
- cuda/ (outside its tests) includes only util/, format/, sample/, backend/
  and the one core header whose functions it defines (parallel/device_comm.h);
- every .cpp under core/ is in core/CMakeLists.txt (no orphan sources).

Usage: check_layers.py REPO_ROOT. Exit 0 when the tree obeys, 1 listing each
include that breaks a rule.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
CUDA_ALLOWED = {"util", "format", "sample", "backend"}
CUDA_DEFINES = {"parallel/device_comm.h"}


def sources(root, top):
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        for f in sorted(files):
            if f.endswith((".h", ".hpp", ".cpp", ".inc", ".cu", ".cuh")):
                yield os.path.join(dirpath, f)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    cmake = open(os.path.join(root, "core", "CMakeLists.txt")).read()
    order = re.findall(r"^\s*# ([a-z_]+)/:", cmake, re.M)
    if len(order) < 2:
        print("check_layers: no '# folder/:' layer comments in core/CMakeLists.txt")
        return 1
    rank = {d: i for i, d in enumerate(order)}
    bad = []
    present = sorted(d for d in os.listdir(os.path.join(root, "core")) if os.path.isdir(os.path.join(root, "core", d)))
    for d in present:
        if d not in rank:
            bad.append(f"core/{d}/ is not a layer in core/CMakeLists.txt")
    for path in sources(root, "core"):
        rel = os.path.relpath(path, root)
        own = rel.split(os.sep)[1]
        for inc in INCLUDE.findall(open(path, errors="replace").read()):
            top = inc.split("/")[0]
            if top == "paca" or top == "capi" or top == "cuda":
                bad.append(f"{rel}: includes {inc} (core never includes the C ABI or cuda/)")
            elif top in rank and own in rank and rank[top] > rank[own]:
                bad.append(f"{rel}: includes {inc} ({top}/ is a layer above {own}/)")
        if rel.endswith(".cpp") and os.path.relpath(path, os.path.join(root, "core")) not in cmake:
            bad.append(f"{rel}: not listed in core/CMakeLists.txt")
    for path in sources(root, "cuda"):
        rel = os.path.relpath(path, root)
        if rel.startswith(os.path.join("cuda", "tests")) or rel.startswith(os.path.join("cuda", "bench")):
            continue
        for inc in INCLUDE.findall(open(path, errors="replace").read()):
            top = inc.split("/")[0]
            if top in rank and top not in CUDA_ALLOWED and inc not in CUDA_DEFINES:
                bad.append(f"{rel}: includes {inc} (a backend includes only {', '.join(sorted(CUDA_ALLOWED))})")
    for b in bad:
        print(b)
    print(f"check_layers: {len(order)} layers ({' > '.join(reversed(order))}), {len(bad)} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
