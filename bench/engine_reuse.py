"""Benchmark: what the run engine's reuse checks cost on a finished run, cheap vs ``--verify``.

A rerun of a finished recipe reuses every stage. Before it does, it checks each stage's folder
against the manifest. The default check compares sizes and modification times. ``--verify``
also re-hashes every byte. Both checks run in the same process, on the same finished run folder,
through :func:`vinaforge.runner.run_recipe` (no interpreter start-up). Each is warmed up once,
then timed ``--repeats`` times, and the best time counts. The run folder must hold a complete,
unchanged run of the recipe: the script fails if any stage runs again. Usage::

    python bench/engine_reuse.py RECIPE --run-dir DIR [--repeats 5] [--json bench/out/engine_reuse.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def _time(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--run-dir", type=Path, required=True, help="parent folder of the finished run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    recipe = load_recipe(args.recipe)
    run = args.run_dir / recipe.name
    manifest = run / "manifest.json"
    before = {k: v["finished_at"] for k, v in json.loads(manifest.read_text())["stages"].items()}
    size = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
    n_files = sum(1 for f in run.rglob("*") if f.is_file())

    cheap = _time(lambda: run_recipe(recipe, run_root=args.run_dir), args.repeats)
    verify = _time(lambda: run_recipe(recipe, run_root=args.run_dir, verify=True), args.repeats)
    after = {k: v["finished_at"] for k, v in json.loads(manifest.read_text())["stages"].items()}
    if after != before:
        raise SystemExit("a stage ran again: the run folder was not a complete, unchanged run")

    result = {
        "recipe": str(args.recipe),
        "stages": len(before),
        "files": n_files,
        "bytes": size,
        "reuse_check_s": round(cheap, 4),
        "reuse_verify_s": round(verify, 4),
        "verify_over_check": round(verify / cheap, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
