"""Run every benchmark in this folder, one process each, and print their figures."""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
names = sys.argv[1:] or sorted(p.stem for p in here.glob("bench_*.py"))
failed = [n for n in names if subprocess.call([sys.executable, str(here / f"{n}.py")]) != 0]
sys.exit(f"benchmarks failed: {', '.join(failed)}" if failed else 0)
