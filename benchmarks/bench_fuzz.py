"""Hostile-file drills at scale: thousands of mutated checkpoints and audio files through livesound's readers,
then the hostile-network and broken-cache drills.

    python benchmarks/bench_fuzz.py                      # 5000 cases, seed 0; 20 cases of each drill
    python benchmarks/bench_fuzz.py --cases 20000 --seed 7 --drill-cases 50

Seeds are tiny valid files in every format livesound reads (rosinality .pt, NVIDIA .pkl, livesound safetensors
generator and mapper, WAV 16/24-bit, FLAC, OGG), written by the test suite's format writers, with hostile variants
(generators whose config and tensors agree but are far larger than the file, compression bombs). Each case is one
mutation (see ``livesound.bench.fuzzing``). Recorded: cases, loaded, clear errors (CheckpointError / AudioError), other
failures (anything else: a finding), the slowest case, the growth of peak RSS, whether any payload ran code, and per
mutation its cases, worst time and worst peak-memory step. The drills (``livesound.bench.drills``: swap floods over
UDP, corrupt engine-cache entries) add their cases, failures, worst time, memory and threads.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the format writers live there

from fuzz_seeds import make_seeds  # noqa: E402

from livesound.bench.drills import run_drills  # noqa: E402
from livesound.bench.fuzzing import run  # noqa: E402
from livesound.files import write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drill-cases", type=int, default=20, help="cases of each drill (swap flood, corrupt cache)")
    ap.add_argument("--name", default="fuzz_cpu", help="result file stem")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("livesound").setLevel(logging.CRITICAL)  # the drills' refusals are counted, not printed
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        marker = tmp / "PWNED"
        seeds = make_seeds(tmp / "seeds", marker)
        bar = tqdm(total=args.cases, unit="case", file=sys.stderr, mininterval=5)
        t0 = time.perf_counter()
        report = run(seeds, args.cases, args.seed, tmp, marker, progress=lambda n: bar.update(n - bar.n))
        bar.close()
        wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        drills = run_drills(args.drill_cases, args.seed, tmp / "drills")
        drills_wall = time.perf_counter() - t0
    result = {"benchmark": "hostile files: mutated checkpoints and audio through livesound's readers",
              "seed": args.seed, "wall_s": wall, "seeds": [s.name for s in seeds]} | report.as_dict() | {
              "drills": drills, "drills_wall_s": drills_wall,
              "device": f"CPU: {platform.processor() or platform.machine()}", "date": time.strftime("%Y-%m-%d")}
    write_json(RESULTS / f"{args.name}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "by_mutation"}, indent=2))


if __name__ == "__main__":
    main()
