"""CheXpert train table (223,414 rows, shipped by torchxrayvision) -> tabular text, at full size.

Measures the adapter (pseudonyms + patient split) and the declarative 'chexpert' rules as the workflow runs them
(shards of `shard_size` rows through medsynth.preprocess.tables), against the reference formulation of the same
rules: pandas `DataFrame.apply(row_to_text, axis=1)` over the whole table in one piece. Both must give identical
prompts (exit status 1 otherwise); the ratio says what sharding costs or saves. Peak memory is this process's.

    python bench/chexpert_table_text.py            # bench/out/chexpert_table_text.json
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    from medsynth.adapters import AdapterContext, build_manifest
    from medsynth.preprocess.tables import process_table_shard
    from medsynth.tabular_text import load_rules, row_to_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shard-size", type=int, default=50000)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "chexpert_table_text.json")
    args = ap.parse_args()

    cfg = {"adapter": "chexpert_table", "tabular_rules": "chexpert", "shard_size": args.shard_size}
    ctx = AdapterContext(name="chexpert_table", adapter="chexpert_table", cfg=cfg, key=b"bench", results=Path("."))
    t0 = time.perf_counter()
    table = build_manifest(ctx)
    t_adapter = time.perf_counter() - t0

    t0 = time.perf_counter()
    kept, rejected = [], 0
    for start in range(0, len(table), args.shard_size):
        rows, rejects = process_table_shard(table.iloc[start:start + args.shard_size], cfg, Path("."), Path("."))
        kept.append(rows["prompt"])
        rejected += len(rejects)
    t_ours = time.perf_counter() - t0
    ours = [p for s in kept for p in s]

    rules = load_rules("chexpert")
    t0 = time.perf_counter()
    ref = table.apply(lambda r: row_to_text(r.to_dict(), rules), axis=1).tolist()
    t_ref = time.perf_counter() - t0

    identical = ours == ref
    result = {
        "bench": "chexpert_table_text", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(), "python": platform.python_version(), "rows": len(table),
        "shard_size": args.shard_size, "rejected": rejected, "adapter_s": round(t_adapter, 2),
        "medsynth_rows_per_s": round(len(table) / t_ours), "reference_rows_per_s": round(len(table) / t_ref),
        "speedup": round(t_ref / t_ours, 2), "identical": identical,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "example": ours[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"rows          {len(table)} ({rejected} rejected with a reason)")
    print(f"adapter       {t_adapter:.1f} s (pseudonyms + patient split)")
    print(f"medsynth      {result['medsynth_rows_per_s']} rows/s (shards of {args.shard_size})")
    print(f"reference     {result['reference_rows_per_s']} rows/s (DataFrame.apply over the whole table)")
    print(f"speedup       {result['speedup']}x   identical: {identical}   peak RSS {result['peak_rss_mb']} MB")
    print(f"wrote {args.out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
