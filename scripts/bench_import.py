"""Benchmark: import and audit another system's lists for 100k users x top-20.

Generates a synthetic csv dataset (``--users`` users with ``--per-user`` implicit interactions
each, over ``--items`` items with categories, plus a users table with two attributes) and a
lists file of ``--k`` items per user, then times the two commands a user runs, each in its own
process, and reads each process's peak RSS from the kernel (``os.wait4``)::

    gatlens import-recs --dataset csv --data-dir D --recs lists.csv --name bench
    gatlens audit --dataset csv --data-dir D --model bench --n-boot 1000 [--sweep pop]

Usage: ``python scripts/bench_import.py [--users 100000] [--k 20] [--workdir /tmp/gatlens-bench-import]``.
The issue's budget: both finish in <= 30 s together and each stays <= 2 GB RSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Documentary", "Thriller")


def make_dataset(folder: Path, *, users: int, items: int, per_user: int, seed: int = 0) -> None:
    """interactions.csv (implicit), items.csv and users.csv with a popularity-skewed log."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    # Distinct items per user: sample with replacement, drop repeats (a few users get fewer).
    picks = rng.choice(items, size=(users, per_user), p=popularity)
    user_col = np.repeat(np.arange(users), per_user)
    frame = pd.DataFrame({"u": user_col, "i": picks.reshape(-1)}).drop_duplicates()
    pd.DataFrame(
        {
            "user_id": "u" + frame["u"].astype(str),
            "item_id": "i" + frame["i"].astype(str),
            "timestamp": 1_600_000_000 + rng.integers(0, 10_000_000, len(frame)),
        }
    ).to_csv(folder / "interactions.csv", index=False)
    cats = ["|".join(rng.choice(CATEGORIES, size=rng.integers(1, 3), replace=False)) for _ in range(items)]
    pd.DataFrame({"item_id": [f"i{i}" for i in range(items)], "title": [f"Item {i}" for i in range(items)]}).assign(
        categories=cats
    ).to_csv(folder / "items.csv", index=False)
    pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(users)],
            "gender": rng.choice(["F", "M"], size=users),
            "region": rng.choice(["north", "south", "east", "west"], size=users),
        }
    ).to_csv(folder / "users.csv", index=False)


def make_lists(path: Path, *, users: int, items: int, k: int, seed: int = 1) -> None:
    """A lists file: each user's k distinct items, popularity-skewed, scores decreasing with rank."""
    rng = np.random.default_rng(seed)
    # k distinct items per user: a popularity-skewed first item, then steps of 37 (37 * k < items).
    first = np.minimum(rng.zipf(1.3, users) - 1, items - 1)
    chosen = (first[:, None] + 37 * np.arange(k)) % items
    scores = np.sort(rng.random((users, k)), axis=1)[:, ::-1]
    pd.DataFrame(
        {
            "user_id": np.repeat([f"u{u}" for u in range(users)], k),
            "item_id": ["i" + str(i) for i in chosen.reshape(-1)],
            "rank": np.tile(np.arange(1, k + 1), users),
            "score": np.round(scores.reshape(-1), 6),
        }
    ).to_csv(path, index=False)


def timed(command: list[str]) -> tuple[float, float, float, int]:
    """``(wall seconds, CPU seconds, peak RSS in MiB, exit status)`` of one command in its own process.

    CPU seconds (user + system) say what the wall time would be on a quiet machine: the work is
    single-threaded (OMP_NUM_THREADS=1), so a shared, loaded machine stretches only the wall time.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    print(output[-1500:])
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--per-user", type=int, default=12, help="interactions per user (default: 12)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--sweep", default=None, help="also run the audit's trade-off sweep, e.g. pop (default: none)")
    p.add_argument("--workdir", default="/tmp/gatlens-bench-import")
    args = p.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    data, cache, lists = work / "data", work / "cache", work / "lists.csv"
    t0 = time.perf_counter()
    make_dataset(data, users=args.users, items=args.items, per_user=args.per_user)
    make_lists(lists, users=args.users, items=args.items, k=args.k)
    print(
        f"generated {args.users:,} users x {args.k} lists ({lists.stat().st_size / 2**20:.0f} MiB) "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    gatlens = [sys.executable, "-m", "engine"]
    ds = ["--dataset", "csv", "--data-dir", str(data), "--split", "leave_one_out", "--cache-dir", str(cache)]
    runs = {
        "import": [*gatlens, "import-recs", *ds, "--recs", str(lists), "--name", "bench"],
        "audit": [
            *gatlens,
            "audit",
            *ds,
            "--model",
            "bench",
            "-k",
            str(min(10, args.k)),
            "--n-boot",
            str(args.n_boot),
            *(["--sweep", args.sweep] if args.sweep else []),
        ],
    }
    total = cpu_total = 0.0
    for name, command in runs.items():
        seconds, cpu, rss, code = timed(command)
        total += seconds
        cpu_total += cpu
        print(f"{name}: {seconds:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:,.0f} MiB, exit {code}")
        if code != 0:
            return code
    print(
        f"import + audit: {total:.1f} s wall, {cpu_total:.1f} s CPU (budget 30 s); "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
