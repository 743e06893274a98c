#!/usr/bin/env python3
"""Opens an HTML report in headless Chromium and says, as JSON on stdout, what a reader's
browser saw: console errors, uncaught exceptions, error log entries, every network request the
page made, the charts in the DOM (`figure.chart`: data-chart, data-scenario and the points of
each line), the page's width on a phone's screen, and the size of its print (PDF). Keeps a
screenshot of the whole page (and one at a phone's width) as PNG files.

    report-browser.py CHROMIUM REPORT.html SCREENSHOT.png

Drives Chromium by the DevTools protocol over a WebSocket on loopback (the `websockets`
package, in the venv of scripts/python-venv.sh). Chromium runs with a fresh profile, without
its background networking (which this machine refuses), and is stopped by its own pid.
"""

import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from websockets.sync.client import connect

CHARTS_JS = """JSON.stringify([...document.querySelectorAll('figure.chart')].map(f => ({
  chart: f.dataset.chart,
  scenario: f.dataset.scenario || null,
  series: [...f.querySelectorAll('polyline[data-series]')].map(p => ({
    name: p.dataset.series, points: Number(p.dataset.points),
    drawn: p.getAttribute('points').trim().split(/\\s+/).filter(Boolean).length,
    width: p.getBoundingClientRect().width})),
})))"""


class Cdp:
    """One DevTools WebSocket: calls by id, events kept in order."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []

    def call(self, method, timeout=30, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer in {timeout} s")
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method, timeout=30):
        seen = len(self.events)
        for e in self.events[:seen]:
            if e["method"] == method:
                self.events.remove(e)
                return e
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} in {timeout} s")
            msg = json.loads(self.ws.recv(timeout=left))
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate: {r['exceptionDetails']}")
        return r["result"].get("value")


def devtools_port(profile, proc, timeout=30):
    path = pathlib.Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if path.exists():
            lines = path.read_text().split("\n")
            if len(lines) >= 2 and lines[0].strip():
                return int(lines[0]), lines[1].strip()
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def screenshot(cdp, path):
    size = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = cdp.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    )
    pathlib.Path(path).write_bytes(base64.b64decode(shot["data"]))


def main():
    chromium, report, shot = sys.argv[1:4]
    url = pathlib.Path(report).resolve().as_uri()
    out = {}
    with tempfile.TemporaryDirectory(prefix="sls-chromium-") as profile:
        proc = subprocess.Popen(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                "--window-size=1200,900", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port, browser_path = devtools_port(profile, proc)
            with connect(f"ws://127.0.0.1:{port}{browser_path}", max_size=None) as b:
                target = Cdp(b).call("Target.createTarget", url="about:blank")["targetId"]
            page_ws = f"ws://127.0.0.1:{port}/devtools/page/{target}"
            with connect(page_ws, max_size=None) as ws:
                cdp = Cdp(ws)
                for domain in ("Runtime", "Log", "Network", "Page"):
                    cdp.call(f"{domain}.enable")
                cdp.call("Page.navigate", url=url)
                cdp.wait_event("Page.loadEventFired")
                cdp.drain(0.5)
                out["charts"] = json.loads(cdp.evaluate(CHARTS_JS))
                out["title"] = cdp.evaluate("document.title")
                screenshot(cdp, shot)
                # A phone: 390 CSS pixels wide. The page must fit (tables scroll in their box).
                cdp.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=390, height=844, deviceScaleFactor=1, mobile=True,
                )
                cdp.call("Page.reload")
                cdp.wait_event("Page.loadEventFired")
                cdp.drain(0.3)
                out["phone_width"] = cdp.evaluate("document.documentElement.scrollWidth")
                screenshot(cdp, shot.removesuffix(".png") + "-phone.png")
                cdp.call("Emulation.clearDeviceMetricsOverride")
                pdf = cdp.call("Page.printToPDF", printBackground=False)
                pdf_bytes = base64.b64decode(pdf["data"])
                pathlib.Path(shot.removesuffix(".png") + ".pdf").write_bytes(pdf_bytes)
                out["pdf_bytes"] = len(pdf_bytes)
                cdp.drain(0.2)
                events = cdp.events
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out["console_errors"] = [
        e["params"] for e in events
        if e["method"] == "Runtime.consoleAPICalled"
        and e["params"].get("type") in ("error", "assert")
    ]
    out["exceptions"] = [
        e["params"]["exceptionDetails"] for e in events if e["method"] == "Runtime.exceptionThrown"
    ]
    out["log_errors"] = [
        e["params"]["entry"] for e in events
        if e["method"] == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"
    ]
    out["requests"] = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    out["url"] = url
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
