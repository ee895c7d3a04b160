#!/usr/bin/env python3
"""The tables of reports/mutants.md from the runs of ci/mutants.sh.

Reads every `<out>/<run>/mutants.out/outcomes.json` (default out: ~/.cache/prism-mutants)
and prints, per driver, what its runs tried (all of a file, or a round-robin sample) and
how the mutants ended, then every missed mutant. Usage: python3 ci/mutants_report.py [OUT]
"""

import json
import pathlib
import re
import sys
from collections import defaultdict

ENDS = ("CaughtMutant", "MissedMutant", "Timeout", "Unviable")


def runs(out):
    for path in sorted(out.glob("*/mutants.out/outcomes.json")):
        data = json.loads(path.read_text())
        outcomes = [o for o in data.get("outcomes", []) if "Mutant" in o.get("scenario", {})]
        if not outcomes:
            continue
        # The run's name is the argument ci/mutants.sh got, with / as _.
        run = path.parent.parent
        target = run.name.replace("_", "/")
        # ci/mutants.sh keeps the extra cargo-mutants arguments of the run beside it.
        args = (run / "args").read_text() if (run / "args").exists() else ""
        shard = re.search(r"--shard[= ](\d+)/(\d+)", args)
        yield target, data, outcomes, (f"round-robin sample {int(shard[1]) + 1} of {shard[2]}" if shard else "all")


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path.home() / ".cache/prism-mutants")
    rows = []
    per_driver = defaultdict(lambda: defaultdict(int))
    missed = []
    for target, data, outcomes, scope in runs(out):
        counts = defaultdict(int)
        for o in outcomes:
            counts[o["summary"]] += 1
            if o["summary"] == "MissedMutant":
                missed.append(o["scenario"]["Mutant"]["name"])
        seconds = sum(p.get("duration", 0) for o in outcomes for p in o.get("phase_results", []))
        driver = target.split("/")[3] if target.count("/") >= 3 else target
        for end in ENDS:
            per_driver[driver][end] += counts[end]
        rows.append((target, scope, len(outcomes), *(counts[e] for e in ENDS), seconds))
    print("| run | scope | mutants | caught | missed | timed out | unviable | time |")
    print("|---|---|---|---|---|---|---|---|")
    for target, scope, n, caught, miss, timeout, unviable, seconds in rows:
        print(f"| {target} | {scope} | {n} | {caught} | {miss} | {timeout} | {unviable} | {seconds / 60:.0f} min |")
    print()
    print("| driver | tried | caught | missed | timed out | unviable | caught of viable |")
    print("|---|---|---|---|---|---|---|")
    for driver, c in sorted(per_driver.items()):
        viable = c["CaughtMutant"] + c["MissedMutant"] + c["Timeout"]
        share = f"{100 * (c['CaughtMutant'] + c['Timeout']) / viable:.0f}%" if viable else "-"
        tried = sum(c[e] for e in ENDS)
        print(
            f"| {driver} | {tried} | {c['CaughtMutant']} | {c['MissedMutant']} | {c['Timeout']} | {c['Unviable']} | {share} |"
        )
    print()
    for name in missed:
        print(f"- missed: `{name}`")


if __name__ == "__main__":
    main()
