"""Run every benchmark in this folder, one process each, and print their figures."""

import os
import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
names = sys.argv[1:] or sorted(p.stem for p in here.glob("bench_*.py"))
failed = []
for name in names:
    # Each starts once the files of the one before are on disk, not while
    # the kernel is still writing them back.
    os.sync()
    if subprocess.call([sys.executable, str(here / f"{name}.py")]) != 0:
        failed.append(name)
sys.exit(f"benchmarks failed: {', '.join(failed)}" if failed else 0)
