#!/usr/bin/env python3
"""Fails if any crate of the workspace has an import cycle between its modules.

A module's imports are its `use crate::…`, `use super::…` and `crate::x::` / `super::x::`
paths; a module is a file (`a.rs` or `a/mod.rs`), and `lib.rs`/`main.rs` is the root, which
may import every module (it declares them) but no module may import the root's own items.
Usage: scripts/import-cycles.py [crate-src-dir …] (default: every */src, protocol/pki/src and daemon/core/src).
"""
import os
import re
import sys

def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            mods["::".join(rel)] = open(path, encoding="utf-8").read()
    return mods

def edges(mods):
    out = {m: set() for m in mods}
    for m, text in mods.items():
        parent = m.rsplit("::", 1)[0] if "::" in m else ""
        # Strip `#[cfg(test)] mod tests { … }` bodies: tests may use anything.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        # Comments (doc links included) are not imports.
        text = re.sub(r"//[^\n]*", "", text)
        for prefix, path in re.findall(r"\b(crate|super)::([A-Za-z_][\w:]*)", text):
            base = "" if prefix == "crate" else parent
            parts = path.split("::")
            target = None
            for i in range(len(parts), 0, -1):
                cand = "::".join(([base] if base else []) + parts[:i])
                if cand in mods:
                    target = cand
                    break
            if target is None:
                target = base  # an item of the root (or of the parent module)
            if target != m and not m.startswith(target + "::" if target else "\0"):
                out[m].add(target)
    return out

def cycle(graph):
    state, stack = {}, []
    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(graph.get(n, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if state.get(t) is None:
                c = visit(t)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(graph):
        if state.get(n) is None:
            c = visit(n)
            if c:
                return c
    return None

def main():
    roots = sys.argv[1:] or [d for d in ("protocol/src", "protocol/client/src", "protocol/slsctl/src", "protocol/pki/src", "daemon/core/src", "daemon/redis/src", "daemon/src", "loadgen/src", "benches/src", "nemesis/src") if os.path.isdir(d)]
    bad = False
    for src in roots:
        g = edges(modules(src))
        # The root declares every module; a module naming a root item is an edge to "".
        g[""] = set()
        c = cycle(g)
        if c:
            bad = True
            print(f"{src}: import cycle: " + " -> ".join(x or "<root>" for x in c))
    if bad:
        sys.exit(1)
    print("no import cycles in " + ", ".join(roots))

main()
