"""Replay of CloudTally's downsizing rule (optimizers/rightsizing.py) on generated CPU metrics with a held-out
fortnight (../shared/reference/methods.md 2.1: train on days 1-14, rescale days 15-28 to the target size).

Each generated VM is an m6i.4xlarge (16 vCPU) with 28 days of 5-minute CPU maxima: a diurnal cycle and weekends,
noise, short bursts, and per VM a random trend (-20%..+40% over the 4 weeks) and, for some, a level step in the
second fortnight. The rule sees days 1-14 only; a downsize "stays under target" when the held-out days, rescaled to
the target's vCPUs, keep P99.5 x 1.2 <= 100%. The baseline, measured in the same run, is a peer's rule (P99 of the
last 3 days against an 80% target, as OptScale does).

Run (about ten seconds of CPU, nothing timed):
    .venv/bin/python bench/rightsizing_eval.py --append
"""
from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from optimizers import rightsizing
from optimizers.metrics import Metrics

SAMPLES_PER_DAY = 288
CURRENT = "m6i.4xlarge"


def cpu_series(rng: np.random.Generator) -> np.ndarray:
    n = 28 * SAMPLES_PER_DAY
    t = np.arange(n)
    hour = (t % SAMPLES_PER_DAY) / 12
    level = rng.uniform(2, 45)
    day = 1 + rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * (hour - 9) / 24)
    week = np.where((t // SAMPLES_PER_DAY) % 7 >= 5, rng.uniform(0.5, 1), 1)
    trend = 1 + rng.uniform(-0.2, 0.4) * t / n
    cpu = level * day * week * trend * rng.lognormal(0, 0.12, n)
    bursts = rng.random(n) < rng.uniform(0.0005, 0.004)
    cpu[bursts] *= rng.uniform(1.5, 3, bursts.sum())
    if rng.random() < 0.2:  # a level step in the second fortnight
        cpu[14 * SAMPLES_PER_DAY:] *= rng.uniform(0.8, 1.3)
    return cpu.clip(0, 100)


def held_out_ok(future: np.ndarray, target: str) -> bool:
    scaled = (future * rightsizing.SIZES[CURRENT][0] / rightsizing.SIZES[target][0]).clip(0, None)
    return float(np.percentile(scaled, 99.5)) * 1.2 <= 100


def baseline(train: np.ndarray) -> str | None:
    """OptScale-like: P99 of the last 3 days must fit 80% of the target."""
    p = float(np.percentile(train[-3 * SAMPLES_PER_DAY:], 99))
    vcpu = rightsizing.SIZES[CURRENT][0]
    for t in rightsizing.same_family(CURRENT):
        if rightsizing.SIZES[t][0] < vcpu and p * vcpu / rightsizing.SIZES[t][0] <= 80:
            return t
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vms", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    stats = {"ours": [0, 0, 0.0], "baseline": [0, 0, 0.0]}  # downsizes, kept under target, vCPU saved share
    for _ in range(args.vms):
        cpu = cpu_series(rng)
        train, future = cpu[:14 * SAMPLES_PER_DAY], cpu[14 * SAMPLES_PER_DAY:]
        verdict = rightsizing.judge({"type": CURRENT}, Metrics(cpu=train.tolist()), rightsizing.DEFAULTS)
        ours = verdict[1] if verdict and verdict[0] == "rightsize_downsize" else None
        for name, target in (("ours", ours), ("baseline", baseline(train))):
            if target:
                s = stats[name]
                s[0] += 1
                s[1] += held_out_ok(future, target)
                s[2] += 1 - rightsizing.SIZES[target][0] / rightsizing.SIZES[CURRENT][0]
    lines = [f"### Rightsizing replay (issue 12) — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             f"`.venv/bin/python bench/rightsizing_eval.py --append` ({args.vms} generated {CURRENT} VMs, 28 days "
             "of 5-minute CPU maxima, seed "
             f"{args.seed}; trained on days 1-14, checked on days 15-28 rescaled to the target: P99.5 x 1.2 <= 100%). "
             "The baseline (a peer's P99 of the last 3 days vs 80%) is measured in the same run.", "",
             "| rule | downsizes | stay under target (held out) | mean vCPU saved per downsize |", "|---|---|---|---|"]
    for name, label in (("ours", "CloudTally: P99.5 x 1.2 over 14 days"), ("baseline", "baseline: P99 of 3 days vs 80%")):
        n, ok, saved = stats[name]
        lines.append(f"| {label} | {n} | {ok / n:.2%} ({ok}) | {saved / n:.1%} |" if n else f"| {label} | 0 | - | - |")
    o, b = stats["ours"], stats["baseline"]
    if o[0] and b[0]:
        lines += ["", f"Held-out violations: CloudTally {1 - o[1] / o[0]:.2%} vs baseline {1 - b[1] / b[0]:.2%} "
                  f"({(1 - b[1] / b[0]) / max(1 - o[1] / o[0], 1e-9):.1f}x); target: >= 99% stay under.", ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with Path(__file__).with_name("RESULTS.md").open("a") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
