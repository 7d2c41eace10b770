"""Near-duplicate detection quality of the curate stage on real news, for a given MinHash setting.

Input: the Dân trí news corpus and the first ``--baomoi`` Báo Mới articles, plus edited copies of
``--copies`` random articles (word-level edits until about 5% of the characters changed: the
``near_copy`` helper of the tests). Runs the full curate stage and reports

- recall: the share of (copy, original) pairs that both reached deduplication and end up in
  one duplicate cluster;
- false positives: source articles removed as duplicates whose kept representative shares
  under half of its syllable 3-grams with them (Jaccard < 0.5), per source article.

    python bench/curate_dedup.py                      # the defaults
    python bench/curate_dedup.py --set dedup.minhash.min_similarity=null
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.data.helpers import near_copy, read_folder, read_jsonl, write_jsonl  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "vi_text"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baomoi", type=int, default=3000)
    ap.add_argument("--copies", type=int, default=300)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="curate setting key=value")
    args = ap.parse_args(argv)

    from vinaforge.data.config import Config
    from vinaforge.data.curate import curate
    from vinaforge.data.dedup import syllable_shingles
    from vinaforge.recipe import load_stage_config

    with gzip.open(DATA / "news_dantri_unc_undertheseanlp.jsonl.gz", "rt") as fh:
        news = [json.loads(line) for line in fh]
    with gzip.open(DATA / "news_baomoi_magizbox.jsonl.gz", "rt") as fh:
        news += [json.loads(line) for line in itertools.islice(fh, args.baomoi)]
    for i, d in enumerate(news):
        d["id"] = f"src-{i}"
    rng = random.Random(0)
    originals = rng.sample(news, args.copies)
    copies = [
        {"id": f"copy-{d['id']}", "text": near_copy(d["text"], 0.05, seed=i)} for i, d in enumerate(originals)
    ]
    with tempfile.TemporaryDirectory(prefix="vf-bench-dedup-") as tmp:
        root = Path(tmp)
        write_jsonl(root / "in" / "news.jsonl", [{"id": d["id"], "text": d["text"]} for d in news])
        write_jsonl(root / "in" / "copies.jsonl", copies)
        cfg = load_stage_config(Config, None, [f"inputs={json.dumps([str(root / 'in')])}", *args.sets])
        t0 = time.perf_counter()
        stats = curate(cfg, root / "out")
        seconds = time.perf_counter() - t0
        out = root / "out"
        removed = {
            r["id"]: r for f in ("exact_dedup", "minhash_dedup") for r in read_folder(out / "rejected" / f)
        }
        filtered = {
            r["id"] for f in stats["rejected"] if "dedup" not in f for r in read_folder(out / "rejected" / f)
        }
        clusters = read_jsonl(out / "duplicate_clusters.jsonl.gz")
        member = {m: c["cluster"] for c in clusters for m in [c["kept"], *c["removed"]]}
        pairs = [(c["id"], c["id"].removeprefix("copy-")) for c in copies]
        pairs = [(c, o) for c, o in pairs if c not in filtered and o not in filtered]
        found = sum(
            1
            for c, o in pairs
            if (c in member and member[c] == member.get(o))
            or (c in removed and removed[c]["filter"] == "exact_dedup")
        )
        by_id = {d["id"]: d["text"] for d in news}
        keeper = {c["cluster"]: c["kept"] for c in clusters}
        fp = 0
        src_removed = [r for i, r in removed.items() if i.startswith("src-")]
        for r in src_removed:
            k = keeper.get(r.get("minhash_cluster_id", -1))
            text_k = by_id.get(k) or next((c["text"] for c in copies if c["id"] == k), None)
            if r["filter"] == "exact_dedup" or text_k is None:
                continue
            a, b = set(syllable_shingles(r["text"], 3).tolist()), set(syllable_shingles(text_k, 3).tolist())
            if len(a & b) / len(a | b) < 0.5:
                fp += 1
    mh = cfg.dedup.minhash
    print(
        f"minhash n_grams={mh.n_grams} buckets={mh.num_buckets}x{mh.hashes_per_bucket} "
        f"min_similarity={mh.min_similarity}: {len(news)} articles + {len(copies)} copies, {seconds:.0f} s"
    )
    print(f"recall: {found}/{len(pairs)} = {found / len(pairs):.1%} of copies found")
    print(f"source articles removed as duplicates: {len(src_removed)} ({len(src_removed) / len(news):.2%})")
    print(f"false positives (Jaccard < 0.5 with their kept representative): {fp} ({fp / len(news):.2%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
