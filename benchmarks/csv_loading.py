"""Reading a CSV of numbers: numpy's C parser (the fast path of ``regopt.lab.data.csvfile``) against the
row-by-row ``csv`` reader that names a bad cell (the path every other file takes).

A file of ``--rows`` rows of two features and an integer label is written to a temporary directory; each reader
parses it ``--repeats`` times, alternately; the table gives the median seconds and the peak resident memory of a
fresh process per reader (``ru_maxrss``), and their ratios.

    .venv/bin/python benchmarks/csv_loading.py            # 10^6 rows
    .venv/bin/python benchmarks/csv_loading.py --rows 10000000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

READERS = {
    "np.loadtxt (finite numbers)": "_finite_numbers(PATH, 3)",
    "row by row (csv module)": "header, rows, lines = read_rows(PATH); _parse(rows, lines, header, PATH)",
    "(import only: the baseline)": "None",
}
SETUP = (
    "import resource, time\nfrom pathlib import Path\n"
    "from regopt.lab.data.csvfile import _finite_numbers, _parse, read_rows\n"
)
REPORT = "print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"


def write(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 2)).round(4)
    table = np.column_stack([x, (x[:, 0] > 0).astype(int)])
    np.savetxt(path, table, delimiter=",", fmt=["%.4f", "%.4f", "%d"], header="a,b,label", comments="")


def run(reader: str, path: Path) -> tuple[float, float]:
    """Seconds of one parse (imports not timed) and the process's peak memory in MB, in a fresh interpreter."""
    code = f"{SETUP}PATH = Path({str(path)!r})\nstarted = time.perf_counter()\n{READERS[reader]}\n{REPORT}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "numbers.csv"
        write(path, args.rows)
        size = path.stat().st_size / 1e6
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in READERS}
        for repeat in range(args.repeats):
            for name in sorted(READERS, reverse=repeat % 2 == 1):
                samples[name].append(run(name, path))
    print(f"{args.rows:,} rows x 3 columns ({size:.0f} MB), median of {args.repeats} fresh processes each\n")
    print("| reader | median s | peak memory MB |\n|---|---:|---:|")
    medians = {}
    for name, values in samples.items():
        medians[name] = (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
        print(f"| {name} | {medians[name][0]:.2f} | {medians[name][1]:.0f} |")
    fast, slow = medians["np.loadtxt (finite numbers)"], medians["row by row (csv module)"]
    base = medians["(import only: the baseline)"][1]
    extra_fast, extra_slow = fast[1] - base, slow[1] - base
    print(
        f"\nrow by row / np.loadtxt: {slow[0] / fast[0]:.1f}x the time; memory above the import baseline "
        f"{extra_slow:.0f} MB vs {extra_fast:.0f} MB ({extra_slow / max(extra_fast, 1):.1f}x)"
    )


if __name__ == "__main__":
    main()
