#!/usr/bin/env python3
"""Parses an OpenMetrics exposition (stdin) with prometheus_client's own parser and prints a
JSON summary for a test to assert on; exits non-zero, saying why, if the text does not parse
or breaks a convention this project keeps.

Checked here: the text parses (OpenMetrics, strict: `# EOF`, types, units); every family has
HELP; every counter's samples end in `_total` (or `_created`); every histogram series has
monotonic cumulative buckets ending in `+Inf` equal to its `_count`.

Printed: {"families": [{"name", "type", "help", "unit", "samples": [{"name", "labels",
"value"}]}]} with `+Inf`/`NaN` values as strings.
Usage: curl -s http://ADDR/metrics | python scripts/check-exposition.py
"""
import json
import math
import sys

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as e:  # a clear failure, never a skip
    print(f"cannot import prometheus_client's OpenMetrics parser: {e} "
          "(run scripts/python-venv.sh)", file=sys.stderr)
    sys.exit(2)


def value(v):
    return v if math.isfinite(v) else str(v)


def histogram_problems(fam):
    series = {}
    for s in fam.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "count": None})
        if s.name == fam.name + "_bucket":
            series[key]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == fam.name + "_count":
            series[key]["count"] = s.value
    out = []
    for key, ser in series.items():
        b = sorted(ser["buckets"])
        if not b or b[-1][0] != math.inf:
            out.append(f"{fam.name}{dict(key)}: no +Inf bucket")
            continue
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            out.append(f"{fam.name}{dict(key)}: buckets not monotonic: {b}")
        if b[-1][1] != ser["count"]:
            out.append(f"{fam.name}{dict(key)}: +Inf {b[-1][1]} != count {ser['count']}")
    return out


def main():
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own message says where
        print(f"the exposition does not parse as OpenMetrics: {e}", file=sys.stderr)
        sys.exit(1)
    problems = []
    summary = []
    for fam in families:
        if not fam.documentation:
            problems.append(f"{fam.name}: no HELP")
        if fam.type == "counter":
            for s in fam.samples:
                if not (s.name.endswith("_total") or s.name.endswith("_created")):
                    problems.append(f"{fam.name}: counter sample {s.name} without _total")
        if fam.type == "histogram":
            problems += histogram_problems(fam)
        summary.append({
            "name": fam.name,
            "type": fam.type,
            "help": fam.documentation,
            "unit": fam.unit,
            "samples": [{"name": s.name, "labels": s.labels, "value": value(s.value)}
                        for s in fam.samples],
        })
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    json.dump({"families": summary}, sys.stdout)


main()
