#!/usr/bin/env python3
"""The import-cycle check against small crates written for it: it must see a circle that only
braced or renamed imports close, and must not see one where there is none."""
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "import-cycles.py")


def check(files):
    with tempfile.TemporaryDirectory() as src:
        for name, text in files.items():
            path = os.path.join(src, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return subprocess.run([sys.executable, SCRIPT, src], capture_output=True, text=True)


class ImportCycles(unittest.TestCase):
    def test_a_circle_closed_by_a_braced_import_fails(self):
        r = check({
            "lib.rs": "mod service;\n",
            "service/mod.rs": "mod awaits;\nmod handlers;\nmod reply;\n",
            "service/awaits.rs": "use super::{handlers, reply::Reply};\n",
            "service/handlers.rs": "use super::awaits::wait;\n",
            "service/reply.rs": "pub struct Reply;\n",
        })
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("service::awaits -> service::handlers -> service::awaits", r.stdout)

    def test_a_circle_through_a_nested_group_and_a_rename_fails(self):
        r = check({
            "lib.rs": "mod a;\nmod b;\nmod c;\n",
            "a.rs": "pub use crate::{\n    c::{One,\n        Two as Deux},\n};\n",
            "b.rs": "use crate::a::One;\n",
            "c.rs": "pub(crate) use super::b::Thing as T;\n",
        })
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("import cycle", r.stdout)

    def test_a_tree_without_a_circle_passes(self):
        r = check({
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use super::{b::{One, Two}, b};\n// use crate::a; (a comment, not an import)\n",
            "b.rs": "pub struct One;\npub struct Two;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
        })
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_module_map_that_claims_an_order_the_code_breaks_fails(self):
        claim = ("//! The modules; each uses only those listed after it (no cycle):\n//!\n//! ```text\n"
                 "//!  awaits    parked   ─▶ reply\n//!  nodes     notes    ─▶ awaits\n"
                 "//!  reply     answers  ─▶ (nothing)\n//! ```\n")
        files = {
            "lib.rs": claim + "mod awaits;\nmod nodes;\nmod reply;\n",
            "awaits.rs": "use crate::reply::Reply;\n",
            "nodes.rs": "use crate::{awaits::wake, reply::Reply};\n",
            "reply.rs": "pub struct Reply;\n",
        }
        r = check(files)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("lists awaits before nodes, which uses it", r.stdout)
        files["lib.rs"] = files["lib.rs"].replace("awaits    parked   ─▶ reply\n//!  nodes     notes    ─▶ awaits",
                                                  "nodes     notes    ─▶ awaits\n//!  awaits    parked   ─▶ reply")
        self.assertEqual(check(files).returncode, 0)
        files["extra.rs"] = "pub struct Extra;\n"
        r = check(files)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("does not list extra", r.stdout)


if __name__ == "__main__":
    unittest.main()
