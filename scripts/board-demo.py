#!/usr/bin/env python3
"""The Grafana board (docs/grafana/slsd.json) on real data, without Grafana.

Starts a release slsd (--metrics) in a temporary directory, a real Prometheus (Debian's
`prometheus`) scraping it and the load generator every second, and one bounded
`sls-loadgen run --metrics` against it; then evaluates every query of every panel of the board
over the run with Prometheus's query_range API, prints each panel's series (median and last
value over the run), and, with matplotlib installed, draws the panels into a PNG.

Usage: scripts/board-demo.py [--secs 30] [--rate 2000] [--png docs/grafana/board-snapshot.png]
(after `cargo build --release`). Every process it starts is stopped by its own id on exit.
"""

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(prom, path, **params):
    url = f"http://{prom}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        reply = json.load(r)
    if reply.get("status") != "success":
        raise RuntimeError(f"{params}: {reply}")
    return reply["data"]


def panels(board):
    for p in board["panels"]:
        if p["type"] == "row":
            yield from panels({"panels": p.get("panels", [])})
        else:
            yield p


def legend(fmt, labels):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("job", "instance")) or "value"
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=30)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--png")
    a = ap.parse_args()
    release = os.path.join(ROOT, "target", "release")
    board = json.load(open(os.path.join(ROOT, "docs", "grafana", "slsd.json")))
    work = tempfile.mkdtemp(prefix="sls-board-")
    slsd_port, metrics_port, lg_port, prom_port = (free_port() for _ in range(4))
    procs = []
    try:
        slsd = subprocess.Popen(
            [os.path.join(release, "slsd"), "--data-dir", os.path.join(work, "data"),
             "--listen", f"127.0.0.1:{slsd_port}", "--metrics", f"127.0.0.1:{metrics_port}",
             "--rate-per-user", "1000", "--rate-per-client", "1000",
             "--max-connections-per-address", "20000", "--handshakes-per-address", "0",
             "--log", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "slsd.log"), "w"))
        procs.append(slsd)
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                    f"  - job_name: slsd\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
                    f"  - job_name: sls-loadgen\n    static_configs:\n      - targets: ['127.0.0.1:{lg_port}']\n")
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/prom",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
        procs.append(prom)
        for _ in range(100):
            if os.path.exists(os.path.join(work, "data", "tls", "frontend.pem")):
                break
            time.sleep(0.1)
        start = time.time()
        run = subprocess.run(
            [os.path.join(release, "sls-loadgen"), "run", "--target", f"127.0.0.1:{slsd_port}",
             "--tls-dir", os.path.join(work, "data", "tls"), "--users", "5000",
             "--rate", str(a.rate), "--duration", f"{a.secs}s", "--max-apps", "1000",
             "--metrics", f"127.0.0.1:{lg_port}"],
            capture_output=True, text=True, timeout=a.secs + 120)
        end = time.time()
        table = run.stdout.strip() or run.stderr.strip()
        print("\n".join(l for l in table.splitlines() if not l.startswith("[")), file=sys.stderr)
        time.sleep(2)  # a last scrape of slsd
        prom_addr = f"127.0.0.1:{prom_port}"
        results = []
        for p in panels(board):
            series = []
            for t in p["targets"]:
                expr = t["expr"].replace("$instance", ".+").replace("$__rate_interval", "5s")
                data = api(prom_addr, "/api/v1/query_range", query=expr,
                           start=f"{start + 5:.0f}", end=f"{end:.0f}", step="1")
                for s in data["result"]:
                    pts = [(float(x), float(v)) for x, v in s["values"] if not math.isnan(float(v))]
                    if pts:
                        series.append((legend(t.get("legendFormat"), s["metric"]), pts))
            series.sort(key=lambda s: -statistics.median(v for _, v in s[1]))
            results.append((p["title"], p.get("fieldConfig", {}).get("defaults", {}).get("unit", ""), series))
        for title, unit, series in results:
            print(f"{title}  [{unit}]")
            for name, pts in series[:8]:
                vals = [v for _, v in pts]
                print(f"    {name:<36} median {statistics.median(vals):>12.6g}   last {vals[-1]:>12.6g}")
            if not series:
                print("    (no data)")
        if a.png:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            cols = 3
            rows = math.ceil(len(results) / cols)
            fig, axes = plt.subplots(rows, cols, figsize=(cols * 5.5, rows * 2.8))
            for ax, (title, unit, series) in zip(axes.flat, results):
                ax.set_title(f"{title} [{unit}]" if unit else title, fontsize=9)
                for name, pts in series[:8]:
                    ax.plot([x - start for x, _ in pts], [v for _, v in pts], label=name, linewidth=1)
                if series:
                    ax.legend(fontsize=6, loc="upper left")
                ax.tick_params(labelsize=7)
                ax.set_xlabel("s", fontsize=7)
            for ax in list(axes.flat)[len(results):]:
                ax.axis("off")
            fig.suptitle(f"docs/grafana/slsd.json: every panel's queries, evaluated by Prometheus over a "
                         f"{a.secs} s sls-loadgen run at {a.rate} steps/s", fontsize=10)
            fig.tight_layout()
            fig.savefig(a.png, dpi=80)
            print(f"wrote {a.png}", file=sys.stderr)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
