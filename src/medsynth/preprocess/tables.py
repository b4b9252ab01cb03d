"""Table-kind shards (rows with no image: OpenI reports, the CheXpert table): fill `prompt`, reject unusable rows.

With `tabular_rules` set in the dataset's config, each row's prompt is its tabular text (medsynth.tabular_text);
otherwise the adapter's prompt is kept. A row whose prompt ends up empty is rejected with a reason, never dropped.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..manifest import REJECT_COLUMNS
from ..tabular_text import load_rules, row_to_text


def process_table_shard(rows: pd.DataFrame, cfg: dict, out_dir: Path,
                        results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with `prompt` filled, rejects). `out_dir`/`results` are unused: table rows have no files to write."""
    rows = rows.reset_index(drop=True).copy()
    reasons = pd.Series([""] * len(rows), dtype=object)
    details = pd.Series([""] * len(rows), dtype=object)
    rules_name = cfg.get("tabular_rules")
    if rules_name:
        rules = load_rules(rules_name)
        prompts = [row_to_text(r, rules) for r in rows.to_dict("records")]
        rows["prompt"] = pd.Series(prompts, dtype=object)
        empty = rows["prompt"] == ""
        reasons[empty] = "no usable attributes"
        details[empty] = f"every column named in tabular rules '{rules.name}' is missing, a sentinel or out of range"
    else:
        prompt = rows["prompt"].fillna("").astype(str).str.strip() if "prompt" in rows else pd.Series([""] * len(rows))
        rows["prompt"] = prompt.to_numpy()
        empty = prompt.to_numpy() == ""
        reasons[empty] = "empty report"
        details[empty] = "no findings and no impression text"
    bad = reasons != ""
    rejects = pd.DataFrame({
        "id": rows.loc[bad, "id"].astype(str).to_numpy(),
        "source": rows.loc[bad, "source"].astype(str).to_numpy() if "source" in rows else "",
        "reason": reasons[bad].to_numpy(),
        "detail": details[bad].to_numpy(),
    }, columns=REJECT_COLUMNS)
    return rows.loc[~bad].reset_index(drop=True), rejects
