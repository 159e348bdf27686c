"""How long `llmplan plan` takes to search the layouts of Llama 3.1 405B on 16,384 H100s (issue 13: under 2 s).

Usage: python benchmarks/plan_speed.py [--repeat N]   (prints the wall-clock seconds of the search itself and of
the whole command in a fresh interpreter)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARGS = ["plan", "--model", "llama-3.1-405b", "--gpu", "h100", "--gpus", "16384", "--seq", "8192",
        "--global-batch", "2048", "--json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from llmplan.estimate.plan import plan_layouts
    from llmplan.estimate.steptime import make_system
    from llmplan.hardware import get_gpu
    from llmplan.models import get_preset

    spec = get_preset("llama-3.1-405b")
    t0 = time.perf_counter()
    result = plan_layouts(spec, make_system(get_gpu("h100"), 16384), 8192, 2048)
    search = time.perf_counter() - t0
    print(f"search: {search:.2f} s for {result.searched} layouts ({result.fitting_checked} memory checks)")
    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmplan", *ARGS], check=True, capture_output=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": ""})
        walls.append(time.perf_counter() - t0)
    print(f"command: best of {args.repeat}: {min(walls):.2f} s (median {sorted(walls)[len(walls) // 2]:.2f} s)")


if __name__ == "__main__":
    main()
