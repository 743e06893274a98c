#!/usr/bin/env python3
"""Fails if any crate of the workspace has an import cycle between its modules.

A module's imports are its `use crate::…`, `use super::…` (braced groups such as
`use super::{a, b::{c, d}}` expanded to every path they name) and `crate::x::` / `super::x::`
paths; a module is a file (`a.rs` or `a/mod.rs`), and `lib.rs`/`main.rs` is the root, which
may import every module (it declares them) but no module may import the root's own items.
A module whose docs claim its modules are listed so that "each uses only those listed after it"
is held to it: every module listed, and every import among them going down the list.
Usage: scripts/import-cycles.py [crate-src-dir …] (default: every */src, protocol/pki/src and daemon/*/src).
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

def expand(tree):
    """`a::{b, c::{d, e}}` (no whitespace) -> ["a::b", "a::c::d", "a::c::e"]."""
    i = tree.find("{")
    if i < 0:
        return [tree.split(" as ")[0]]
    head, body = tree[:i], tree[i + 1 : tree.rfind("}")]
    out, depth, start = [], 0, 0
    for j, ch in enumerate(body + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            item = body[start:j]
            start = j + 1
            if item:
                out += [head + x for x in expand(item)]
    return out

def edges(mods):
    out = {m: set() for m in mods}
    for m, text in mods.items():
        parent = m.rsplit("::", 1)[0] if "::" in m else ""
        # Strip `#[cfg(test)] mod tests { … }` bodies: tests may use anything.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        # Comments (doc links included) are not imports.
        text = re.sub(r"//[^\n]*", "", text)
        paths = []
        # `use` declarations, braced groups expanded; what is left is searched for inline paths.
        def take(match):
            paths.extend(expand(re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", match.group(1)))))
            return ";"
        text = re.sub(r"\buse\s+([^;]*);", take, text)
        paths += ["::".join(p) for p in re.findall(r"\b((?:crate|super)(?:::super)*)::([A-Za-z_][\w:]*)", text)]
        for full in paths:
            parts = full.split("::")
            if parts[0] == "crate":
                base, parts = "", parts[1:]
            elif parts[0] == "super":
                base = m
                while parts and parts[0] == "super":
                    base = base.rsplit("::", 1)[0] if "::" in base else ""
                    parts = parts[1:]
            else:
                continue
            parts = [x for x in parts if x and x != "self" and x != "*"]
            if not parts:
                parts = [""]
            target = None
            for i in range(len([x for x in parts if x]), 0, -1):
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

def map_breaks(src, mods, graph):
    """A module whose docs claim "each uses only those listed after it" lists its modules in a
    text block (`//!  name   what it is   ─▶ uses`); every import among them must go down the list."""
    out = []
    for m, text in mods.items():
        if "each uses only those listed after it" not in text:
            continue
        block = text.split("each uses only those listed after it", 1)[1].split("```text", 1)[1].split("```", 1)[0]
        order = [line.split()[1] for line in block.splitlines() if len(line.split()) > 1]
        names = [(m + "::" + n) if m else n for n in order]
        for n in mods:
            if n != m and n.startswith(m + "::" if m else "") and n.count("::") == (m.count("::") + 1 if m else 0) and n not in names:
                out.append(f"{src}: {m or '<root>'}'s module map does not list {n}")
        for i, n in enumerate(names):
            for t in sorted(graph.get(n, ())):
                if t in names and names.index(t) < i:
                    out.append(f"{src}: {m or '<root>'}'s module map lists {t} before {n}, which uses it")
    return out

def main():
    roots = sys.argv[1:] or [d for d in ("protocol/src", "protocol/client/src", "protocol/slsctl/src", "protocol/pki/src", "daemon/core/src", "daemon/engine/src", "daemon/redis/src", "daemon/src", "loadgen/src", "benches/src", "nemesis/src", "sim/src") if os.path.isdir(d)]
    bad = False
    for src in roots:
        mods = modules(src)
        g = edges(mods)
        # The root declares every module; a module naming a root item is an edge to "".
        g[""] = set()
        for line in map_breaks(src, mods, g):
            bad = True
            print(line)
        c = cycle(g)
        if c:
            bad = True
            print(f"{src}: import cycle: " + " -> ".join(x or "<root>" for x in c))
    if bad:
        sys.exit(1)
    print("no import cycles in " + ", ".join(roots))

main()
