#!/usr/bin/env python3
"""Checks the layering rule of rproxy.h: a file calls only the files
declared above its own section.

The order comes from rproxy.h's section headings, "(rproxy_<area>.c)",
read top to bottom after rproxy_parse.c (the lowest, in rproxy_parse.h);
mod_rproxy.c is on top.  Who uses whom comes from the built objects
(nm: a file's undefined rproxy_* symbols, and the file that defines each),
so a call hidden in a macro counts too.  Exits 1 naming every use that
goes up or sideways, 0 otherwise.  Run by `make test` after the build.
"""
import os
import re
import subprocess
import sys

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
header = open(os.path.join(top, "rproxy.h")).read()
order = ["rproxy_parse.c"] + re.findall(r"^/\* ---- .*\((rproxy_\w+\.c)\)",
                                         header, re.M) + ["mod_rproxy.c"]
rank = {f: i for i, f in enumerate(order)}

objdir = os.path.join(top, ".libs")
defined, used = {}, {}
for src in order:
    obj = os.path.join(objdir, src[:-2] + ".o")
    if not os.path.exists(obj):
        sys.exit(f"layers: {obj} is missing: build first (make)")
    out = subprocess.run(["nm", obj], capture_output=True, text=True,
                         check=True).stdout
    used[src] = set()
    for line in out.splitlines():
        parts = line.split()
        kind, sym = parts[-2], parts[-1]
        # The module record is data every file logs through
        # (APLOG_USE_MODULE), not a call.
        if not sym.startswith("rproxy_") or sym == "rproxy_module":
            continue
        if kind == "U":
            used[src].add(sym)
        elif kind.isupper():
            defined[sym] = src

sources = {f for f in os.listdir(top) if re.fullmatch(r"(mod_)?rproxy\w*\.c", f)}
bad = []
for f in sorted(sources - set(order)):
    bad.append(f"{f} has no section in rproxy.h")
for src in order:
    for sym in sorted(used[src]):
        dst = defined.get(sym)
        if dst and dst != src and rank[dst] >= rank[src]:
            bad.append(f"{src} uses {sym} of {dst}, which is not below it")
for line in bad:
    print("layers: " + line)
if bad:
    sys.exit(1)
print("layers: ok, bottom-up: " + " < ".join(order))
