"""The method core's benchmarks in one run: loss step, clustering, NEMD.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/core.py [--out benchmarks/core.json]

Prints each measurement with its ratio against the goal and writes the raw numbers as JSON
(with the machine's description) for ``benchmarks/RESULTS.md``. Never run from the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_clustering
import bench_losses
import bench_nemd


def machine() -> dict:
    import faiss
    import numpy as np
    import torch

    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "cuda": torch.cuda.is_available(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/core.json"))
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    args = parser.parse_args()
    results = {"machine": machine()}
    results["losses"] = bench_losses.run(device=args.device)
    r = results["losses"]
    print(
        f"loss step  ms: moco {r['ms']['moco']:.1f}  pcl {r['ms']['pcl']:.1f}  "
        f"pauc {r['ms']['pauc']:.1f}  PAUC/PCL {r['pauc_over_pcl']:.3f} (goal <= 1.10)"
    )
    results["clustering"] = bench_clustering.run()
    r = results["clustering"]
    print(
        f"clustering {r['ours']['gflops']:.1f} GFLOP/s = {r['ours']['fraction_of_matmul']:.0%} "
        f"of matmul {r['matmul_gflops']['best']:.1f} (goal >= 60%); sklearn/ours time "
        f"{r['sklearn_over_ours_time']:.2f} (goal >= 1), inertia gap "
        f"{r['inertia_relative_gap']:.2%}"
    )
    results["nemd"] = bench_nemd.run(device=args.device)
    r = results["nemd"]
    print(
        f"NEMD       fast {r['fast_seconds']:.2f}s vs POT {r['pot_seconds']:.2f}s: "
        f"{r['speedup']:.1f}x (goal >= 10x); max rel diff {r['max_rel_diff']:.2e}, "
        f"diff of means {r['rel_diff_of_means']:.2e}"
    )
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
