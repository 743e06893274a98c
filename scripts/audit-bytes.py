#!/usr/bin/env python3
"""The audit trail's bytes a verdict on disk and slsd's memory with and without it.

Starts slsd (--slsd, default target/release/slsd) twice on a free port in a temporary data
directory, with --audit-keep 0 and with the default trail, drives each with
`sls-loadgen run --raw` (5,000 users, 8 connections x 256 in flight, 5 s), reads slsd's VmRSS,
stops it with SIGTERM (by its pid), and reads <data-dir>/audit/: its bytes and records (each
`u32` length, `u32` CRC, payload). Prints one line per run.

    scripts/audit-bytes.py [--slsd target/release/slsd] [--loadgen target/release/sls-loadgen]
"""

import argparse
import os
import re
import signal
import struct
import subprocess
import tempfile


def run(a, args, label):
    data = os.path.join(tempfile.mkdtemp(prefix="sls-audit-bytes-"), "data")
    s = subprocess.Popen([a.slsd, "--listen", "127.0.0.1:0", "--rate-per-user", "0",
                          "--rate-per-client", "0", "--log", "warn", "--data-dir", data] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.match(r"listening (\S+)", s.stdout.readline())
    subprocess.run([a.loadgen, "run", "--raw", "--target", m.group(1), "--tls-dir",
                    os.path.join(data, "tls"), "--users", "5000", "--connections", "8",
                    "--in-flight", "256", "--duration", "5s", "--warmup", "0s"],
                   capture_output=True, text=True)
    with open(f"/proc/{s.pid}/status") as f:
        rss = [l for l in f if l.startswith("VmRSS")][0].split()[1]
    s.send_signal(signal.SIGTERM)
    s.wait(timeout=60)
    n = total = 0
    audit = os.path.join(data, "audit")
    for name in sorted(os.listdir(audit)) if os.path.isdir(audit) else []:
        with open(os.path.join(audit, name), "rb") as f:
            b = f.read()
        total += len(b)
        i = 8
        while i + 8 <= len(b):
            i += 8 + struct.unpack(">I", b[i:i + 4])[0]
            n += 1
    journal = os.path.join(data, "journal")
    jb = sum(os.path.getsize(os.path.join(journal, f)) for f in os.listdir(journal))
    print(f"{label}: slsd VmRSS {rss} kB after the run; audit files {total} bytes, {n} entries, "
          f"{total / max(n, 1):.1f} bytes/entry on disk; journal {jb} bytes")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--slsd", default="target/release/slsd")
    p.add_argument("--loadgen", default="target/release/sls-loadgen")
    a = p.parse_args()
    run(a, ["--audit-keep", "0"], "audit off (--audit-keep 0)")
    run(a, [], "audit on (default, keep 200)")


if __name__ == "__main__":
    main()
