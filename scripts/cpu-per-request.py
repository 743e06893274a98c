#!/usr/bin/env python3
"""slsd's CPU per request under a closed loop of DSC+ logins.

Starts slsd on a free loopback port with its metrics endpoint, drives it with
`sls-loadgen run --raw` (8 connections x 256 in flight by default), and reads slsd's own
`/metrics` twice inside the run, after a warm-up: process_cpu_seconds_total and the sum of
sls_requests_total. CPU per request is the first's delta over the second's: the daemon's own
accounting over a steady window, enrolment and start-up excluded. Stops what it started, by
its pid.

    scripts/cpu-per-request.py [--slsd target/release/slsd] [--loadgen target/release/sls-loadgen]
        [--slsd-args "--endpoints 1"] [--loadgen-args "--threads 1"]
        [--slsd-cpus 0] [--loadgen-cpus 1] [--secs 20] [--warm 10] [--runs 1] [--users 20000]
        [--modes raw,scenario] [--scenario-args "--scenarios dsc_plus=1"]

`--modes` names the load generator's paths to compare, each run once per round, in turn, so
that the machine's noise falls on all of them alike: `raw` (`run --raw`) and `scenario` (`run
--scenarios dsc_plus=1`, the scenario client: its closed loop of DSC+ logins runs batched per
connection like `--raw`, each step judged into the scenario's stats; `--scenario-args` with a
push or slow-user plan measures its task-per-call path).
A mode may name its own load generator build, `scenario:/tmp/sls-loadgen-before`, to set a
build against another in the same sitting.
The window starts `--warm` seconds after the load generator says its connections are up.

Prints one line per run (with each endpoint thread's cores over the window: with several
endpoints the kernel spreads the client's sockets over them by a hash of their addresses, and
with the load generator's few sockets the split can be uneven, and the machine's load average)
and, with --runs > 1, the medians per mode; with two modes, each mode's figures against the
first's.
"""

import argparse
import os
import queue
import threading
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    cpu = requests = 0.0
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            cpu = float(line.split()[1])
        elif line.startswith("sls_requests_total{"):
            requests += float(line.rsplit(" ", 1)[1])
    return time.monotonic(), cpu, requests


def endpoint_ticks(pid):
    """CPU ticks of each endpoint thread of `pid`, by thread id (names are cut to 15 bytes:
    `slsd-endpoint-10` reads as `slsd-endpoint-1`)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if name.startswith("slsd-endpoint"):
            # utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
            out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def pinned(cpus, argv):
    return (["taskset", "-c", cpus] if cpus else []) + argv


def one_run(a, mode="raw", loadgen=None):
    work = tempfile.mkdtemp(prefix="sls-cpu-")
    mport = free_port()
    slsd = subprocess.Popen(
        pinned(a.slsd_cpus, [a.slsd, "--listen", "127.0.0.1:0", "--metrics", f"127.0.0.1:{mport}",
                             "--rate-per-user", "0", "--rate-per-client", "0", "--log", "warn",
                             "--data-dir", os.path.join(work, "data")] + shlex.split(a.slsd_args)),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lg = None
    try:
        line = slsd.stdout.readline()
        m = re.match(r"listening (\S+)", line)
        if not m:
            sys.exit(f"slsd did not start: {line!r}")
        path = ["--raw"] if mode == "raw" else shlex.split(a.scenario_args)
        lg = subprocess.Popen(
            pinned(a.loadgen_cpus, [loadgen or a.loadgen, "run"] + path + [
                "--target", m.group(1), "--tls-dir", os.path.join(work, "data", "tls"),
                "--users", str(a.users), "--connections", str(a.connections),
                "--in-flight", str(a.in_flight), "--duration", f"{a.secs}s",
                "--warmup", "0s"] + shlex.split(a.loadgen_args)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The fleet's enrolment and connections come first: the window starts `warm` seconds
        # after the load generator says they are done (its stderr is read by a thread, kept).
        lines = queue.Queue()

        def pump():
            for line in lg.stderr:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        err = []
        ready = "enrolled" if mode == "raw" else "frontend connections"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                sys.exit(f"the load generator ended early: {''.join(err)}")
            err.append(line)
            if ready in line:
                break
        time.sleep(a.warm)
        t0, c0, r0 = scrape(mport)
        e0 = endpoint_ticks(slsd.pid)
        time.sleep(max(1, a.secs - a.warm - 2))
        t1, c1, r1 = scrape(mport)
        e1 = endpoint_ticks(slsd.pid)
        hz = os.sysconf("SC_CLK_TCK")
        # With several endpoints the kernel spreads the client's sockets over them by a hash
        # of their addresses: with few sockets the split can be uneven, and it is printed.
        split = {n: (e1[n] - e0.get(n, 0)) / hz / (t1 - t0) for n in sorted(e1)}
        lg.wait(timeout=a.secs + 60)
        while (line := lines.get(timeout=10)) is not None:
            err.append(line)
        lg_cpu = re.search(r"([0-9.]+) µs of its own CPU", "".join(err))
        reqs = r1 - r0
        return {
            "req_per_s": reqs / (t1 - t0),
            "slsd_cores": (c1 - c0) / (t1 - t0),
            "slsd_us_per_req": (c1 - c0) * 1e6 / max(reqs, 1),
            "lg_us_per_req": float(lg_cpu.group(1)) if lg_cpu else float("nan"),
            "endpoints": split,
            "load": os.getloadavg()[0],
        }
    finally:
        for p in (lg, slsd):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["rm", "-rf", work], check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slsd", default="target/release/slsd")
    p.add_argument("--loadgen", default="target/release/sls-loadgen")
    p.add_argument("--slsd-args", default="")
    p.add_argument("--loadgen-args", default="")
    p.add_argument("--slsd-cpus", default="")
    p.add_argument("--loadgen-cpus", default="")
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--in-flight", type=int, default=256)
    p.add_argument("--secs", type=int, default=20)
    p.add_argument("--warm", type=int, default=10)
    p.add_argument("--runs", type=int, default=1, help="rounds: each mode runs once a round")
    p.add_argument("--modes", default="raw",
                   help="comma-separated, run in turn each round: raw, scenario")
    p.add_argument("--scenario-args", default="--scenarios dsc_plus=1",
                   help="the scenario mode's arguments to `sls-loadgen run`")
    a = p.parse_args()
    if a.secs < a.warm + 3:
        sys.exit("--secs must leave at least 3 s after --warm")
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or any(m.split(":", 1)[0] not in ("raw", "scenario") for m in modes):
        sys.exit("--modes: raw, scenario (each optionally :LOADGEN), comma-separated")
    runs = {m: [] for m in modes}
    for rnd in range(a.runs):
        for mode in modes:
            kind, _, build = mode.partition(":")
            r = one_run(a, kind, build or None)
            runs[mode].append(r)
            label = f"[{mode} {rnd + 1}] " if len(modes) > 1 else ""
            print(f"{label}{r['req_per_s']:,.0f} req/s, slsd {r['slsd_cores']:.2f} cores, "
                  f"{r['slsd_us_per_req']:.2f} µs slsd CPU/request, "
                  f"load generator {r['lg_us_per_req']:.2f} µs CPU/request; endpoint threads "
                  + " ".join(f"{c:.2f}" for c in r["endpoints"].values()) + " cores"
                  + f"; load {r['load']:.2f}", flush=True)
    if a.runs > 1:
        meds = {}
        for mode in modes:
            rs = runs[mode]
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "endpoints"}
            meds[mode] = med
            label = f" ({mode})" if len(modes) > 1 else ""
            print(f"median of {len(rs)}{label}: {med['req_per_s']:,.0f} req/s, "
                  f"{med['slsd_us_per_req']:.2f} µs slsd CPU/request, "
                  f"load generator {med['lg_us_per_req']:.2f} µs CPU/request, "
                  f"load {med['load']:.2f}")
        base = meds[modes[0]]
        for mode in modes[1:]:
            m = meds[mode]
            print(f"{mode} against {modes[0]} (medians): slsd CPU/request "
                  f"{m['slsd_us_per_req'] / base['slsd_us_per_req']:.2f}x, req/s "
                  f"{m['req_per_s'] / base['req_per_s']:.2f}x")


if __name__ == "__main__":
    main()
