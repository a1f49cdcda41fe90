"""Eligibility throughput: the whole incentive rule set over many enterprise-years, vector path vs scalar path.

Generates `--rows` seeded synthetic enterprise-years (before any timing), evaluates all of them through every
programme and the stacking rules on the vector path (`incentives.batch.evaluate_batch`, pandas/numpy, integer
fen), and a `--sample` of the same rows on the scalar explain path (`evaluate_all`, one full Determination
with its trace per programme), which is the baseline measured in the same run. The sample's rows are also
compared column by column with the vector result, and any mismatch is reported (it should be 0).

Usage: `python bench/eligibility.py [--rows N] [--sample M] [--seed S]`. The last line is
`eligibility_evals_per_s=<vector rows per second> vector_vs_scalar=<vector rate / scalar rate>`.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from incentives.batch import evaluate_batch, scalar_frame, synthetic_population
from incentives.parameters import default_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="enterprise-years on the vector path")
    parser.add_argument("--sample", type=int, default=2_000, help="enterprise-years on the scalar path")
    parser.add_argument("--seed", type=int, default=20260501)
    args = parser.parse_args()
    params = default_parameters()

    started = time.perf_counter()
    population = synthetic_population(args.rows, seed=args.seed, params=params)
    print(f"generated {args.rows:,} enterprise-years in {time.perf_counter() - started:.1f} s")

    gc.collect()
    started = time.perf_counter()
    vector = evaluate_batch(population, params)
    vector_s = time.perf_counter() - started
    vector_rate = args.rows / vector_s
    print(f"vector path: {args.rows:,} rows in {vector_s:.2f} s = {vector_rate:,.0f} enterprise-years/s "
          f"({len(vector.columns)} output columns)")

    sample = population.iloc[: min(args.sample, args.rows)]
    gc.collect()
    started = time.perf_counter()
    scalar = scalar_frame(sample, params)
    scalar_s = time.perf_counter() - started
    scalar_rate = len(sample) / scalar_s
    print(f"scalar path (baseline): {len(sample):,} rows in {scalar_s:.2f} s = {scalar_rate:,.0f} enterprise-years/s")

    head = vector.iloc[: len(sample)][scalar.columns]
    mismatches = sum(int((head[c].astype(object).to_numpy() != scalar[c].astype(object).to_numpy()).sum())
                     for c in scalar.columns)
    print(f"vector vs scalar on the sample: {mismatches} mismatching cells")
    eligible = {c.split(".")[0]: float(vector[c].mean()) for c in vector.columns if c.endswith(".eligible")}
    print("eligible share: " + ", ".join(f"{code} {share:.0%}" for code, share in eligible.items()))
    print(f"eligibility_evals_per_s={vector_rate:.0f} vector_vs_scalar={vector_rate / scalar_rate:.1f}")


if __name__ == "__main__":
    main()
