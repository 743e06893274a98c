#!/usr/bin/env python3
"""Every figure of issue 13's goals, measured in one sitting, with the command behind each.

Runs, one after another on an otherwise idle machine (nothing is measured while anything
else of this script runs):

1. the reference echo (a bare quinn echo outside the project, `--probe DIR/echo-baseline.sh
   frame 8 256 SECS`) and the project's own echo (`e2e --echo-only`), alternated, RUNS each;
2. the end-to-end runner (`e2e --sls-endpoints 2 --regime1-threads 4`): regimes 1 to 6;
3. slsd's and the load generator's CPU per request (`scripts/cpu-per-request.py`): one
   endpoint pinned on core 0 with the load generator on core 1, then two endpoints on both
   cores shared with a 4-thread load generator;
4. the latency at 25% of regime 1 (`e2e --latency-only`): open loops, echo then sls, in pairs.

Then writes OUT (markdown): the goals' table (each figure, its ratio, its command), and
below it every tool's own output verbatim. Needs a release build (`cargo build --release
--locked -p sls-daemon -p sls-loadgen -p sls-benches`). Every process it starts, it stops
(each tool stops its own by pid).

    scripts/sitting.py [--probe ../shared/perfprobe] [--secs 6] [--runs 3] [--out sitting.md]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E2E = os.path.join(ROOT, "target", "release", "e2e")
CPU = os.path.join(ROOT, "scripts", "cpu-per-request.py")


def run(argv, log, stdout_only=False):
    """Runs argv from the repository's root; returns its stdout and stderr together (or its
    stdout alone)."""
    started = time.strftime("%H:%M:%S", time.gmtime())
    log.append(f"$ {' '.join(argv)}   # {started} UTC")
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    out = p.stdout + p.stderr
    if p.returncode != 0:
        with open(os.path.join(ROOT, "sitting-failed.log"), "w") as f:
            f.write(out)
        head = "\n".join(l for l in out.splitlines() if not re.match(r"\s+(\d+:|at )", l))
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{head[-3000:]}\n"
                 f"(the whole output: {os.path.join(ROOT, 'sitting-failed.log')})")
    return p.stdout if stdout_only else out


def number(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        sys.exit(f"no {what} in:\n{text[-2000:]}")
    return float(m.group(1).replace(",", ""))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--probe", default=os.path.join(ROOT, "..", "shared", "perfprobe"))
    p.add_argument("--secs", type=int, default=6)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", default="sitting.md")
    a = p.parse_args()
    if a.runs < 2:
        sys.exit("--runs must be 2 or more (the CPU figures are medians of runs)")
    if not os.path.exists(E2E):
        sys.exit("no release build: cargo build --release --locked -p sls-daemon -p sls-loadgen -p sls-benches")
    probe = os.path.join(os.path.abspath(a.probe), "echo-baseline.sh")
    if not os.path.exists(probe):
        sys.exit(f"no reference echo at {probe} (--probe DIR)")
    secs, log, verbatim = str(a.secs), [], []
    begun = time.strftime("%Y-%m-%d %H:%M", time.gmtime())

    # 1. The two echoes, alternated.
    ref, own, own_cpu = [], [], []
    for _ in range(a.runs):
        ref.append(number(r"(\d+)\s*$",
                          run(["bash", probe, "frame", "8", "256", secs], log, stdout_only=True),
                          "reference rate"))
        out = run([E2E, "--echo-only", "--secs", secs], log)
        own.append(number(r"rps=(\d+)", out, "project echo rate"))
        own_cpu.append(number(r"client_cpu_us_per_request=([0-9.]+)", out, "echo client CPU"))
    ref_m, own_m = statistics.median(ref), statistics.median(own)

    # 2. The runner.
    with tempfile.TemporaryDirectory() as tmp:
        table = os.path.join(tmp, "e2e.md")
        run([E2E, "--secs", secs, "--sls-endpoints", "2", "--regime1-threads", "4",
             "--out", table], log)
        with open(table) as f:
            runner = f.read()
    verbatim.append(("The runner's table", runner))
    r1 = number(r"\| 1\. [^|]*\| \d+ \((\d+) req/s\)", runner, "regime 1's requests/s")
    r1_lg = number(r"\| 1\. [^|]*\|[^|]*load generator ([0-9.]+) µs", runner, "regime 1's client CPU")
    storm = number(r"\| 4\. [^|]*\|[^|]*\|[^|]*\| ([0-9.]+) of regime 1", runner, "the storm's ratio")
    r3 = number(r"\| 3r\. [^|]*\|[^|]*\|[^|]*\| p99 ([0-9.]+)", runner, "3r's p99 ratio")

    # 3. CPU per request.
    one = run([sys.executable, CPU, "--slsd-args", "--endpoints 1 --threads 1", "--slsd-cpus", "0",
               "--loadgen-cpus", "1", "--secs", "15", "--warm", "8", "--runs", str(a.runs)], log)
    two = run([sys.executable, CPU, "--slsd-args", "--endpoints 2", "--loadgen-args", "--threads 4",
               "--secs", "16", "--warm", "8", "--runs", str(a.runs)], log)
    verbatim.append(("CPU per request", one + "\n" + two))
    med = r"median of \d+: ([0-9,]+) req/s, ([0-9.]+) µs slsd CPU/request, load generator ([0-9.]+)"

    def medians(text):
        m = re.search(med, text)
        if not m:
            sys.exit(f"no medians in:\n{text}")
        return float(m.group(1).replace(",", "")), float(m.group(2)), float(m.group(3))

    one_rate, one_us, one_lg = medians(one)
    two_rate, two_us, two_lg = medians(two)

    # 4. Latency at 25% of regime 1.
    lat = run([E2E, "--latency-only", "--secs", secs, "--latency-runs", str(a.runs)], log)
    verbatim.append(("Latency at 25% of regime 1", lat))
    lat_ratio = number(r"\| median \|[^|]*\|[^|]*\|[^|]*\| ([0-9.]+) \|", lat, "the latency ratio")

    def met(ok):
        return "**yes**" if ok else "**no**"

    rows = [
        ("project echo ÷ reference echo, req/s (≥ 0.8)",
         f"{own_m:,.0f} ÷ {ref_m:,.0f} = {own_m / ref_m:.2f} (runs: own {', '.join(f'{x:,.0f}' for x in own)}; "
         f"reference {', '.join(f'{x:,.0f}' for x in ref)}); echo client {statistics.median(own_cpu):.3f} µs/request",
         met(own_m >= 0.8 * ref_m), "`e2e --echo-only` and `echo-baseline.sh frame 8 256`, alternated"),
        ("sls regime 1 ÷ reference echo, req/s (≥ 0.25)",
         f"{r1:,.0f} ÷ {ref_m:,.0f} = {r1 / ref_m:.2f}; ÷ project echo {r1 / own_m:.2f}",
         met(r1 >= 0.25 * ref_m), "`e2e --sls-endpoints 2 --regime1-threads 4`, regime 1"),
        ("slsd µs CPU / request, one endpoint pinned (≤ 1.5)",
         f"{one_us:.2f} ({one_rate:,.0f} req/s)", met(one_us <= 1.5),
         "`cpu-per-request.py --slsd-args '--endpoints 1 --threads 1' --slsd-cpus 0 --loadgen-cpus 1`"),
        ("load generator µs CPU / request (≤ 1)",
         f"{one_lg:.2f} pinned; {r1_lg:.2f} in regime 1", met(max(one_lg, r1_lg) <= 1.0),
         "printed by `sls-loadgen`"),
        ("2 endpoints, both cores shared with a 4-thread client: req/s, slsd µs / request",
         f"{two_rate:,.0f}, {two_us:.2f} (1 endpoint pinned: {one_rate:,.0f})", "—",
         "`cpu-per-request.py --slsd-args '--endpoints 2' --loadgen-args '--threads 4'`"),
        ("p99 at 25% of regime 1 ÷ echo's p99 (≤ 2)",
         f"{lat_ratio:.2f} (median of {a.runs} pairs); the runner's 3r: {r3:.2f}",
         met(lat_ratio <= 2.0), "`e2e --latency-only --latency-runs N`; the runner's 3r"),
        ("failure storm ÷ regime 1, verified (≥ 0.5)", f"{storm:.2f}", met(storm >= 0.5),
         "the runner's regime 4"),
    ]
    md = [f"# One sitting, {begun} UTC\n",
          "| goal (issue 13) | measured | met? | command |", "|---|---|---|---|"]
    md += [f"| {g} | {m} | {ok} | {c} |" for g, m, ok, c in rows]
    md.append("\nCommands, in the order run:\n\n```text\n" + "\n".join(log) + "\n```\n")
    for title, text in verbatim:
        md.append(f"## {title}\n\n{text.strip()}\n")
    with open(a.out, "w") as f:
        f.write("\n".join(md))
    print("\n".join(md[:len(rows) + 3]))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
