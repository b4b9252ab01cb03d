"""chambon2022 Study 2: which text encoder puts reports with the same CheXpert finding close together?

Every configured encoder x extraction method embeds the impression section of a report set; cosine similarity;
CheXpert@k (k = 10 in the paper) per class and macro -> Table 2 (macro by encoder x extraction) and Table 3
(per class, each encoder with its best extraction, Base = bag-of-words IoU).

Which reports, and what is "a report's CheXpert label" (the paper: ~700 reports, "share its CheXpert label"):
- Text: the configured section (impression). Reports whose section is empty are excluded and counted; so are
  repeats of the same patient's same text (an image-level manifest lists a study's report once per image).
- Labels: a class is a report's finding when its CheXpert value is 1 (positive). Uncertain (-1), negative and
  unmentioned are not. Reports with no positive class are excluded and counted.
- Sampling (`per_class` reports per class, seeded, ~700 = 14 x 50 as in the paper): classes are visited rarest
  first, each draws up to `per_class` not-yet-drawn reports positive for it; a report is drawn at most once and
  its **label is the class it was drawn for**. Rarest-first keeps rare findings from being used up by frequent ones.
- `label_rule: sampled_class` (default): a neighbour shares the query's label when the neighbour is positive for
  the query's drawn class (so a multi-finding neighbour can match several queries). Per class = mean over the
  reports drawn for it; macro = unweighted mean over classes with at least one report.
- `label_rule: equal_label`: the literal reading of "share its CheXpert label" with one label per report: a
  neighbour shares when it was drawn for the same class (a multi-finding neighbour matches only its drawn class).
- `label_rule: label_set`: every report carries its full positive set; a neighbour shares when the sets intersect;
  a report counts towards each of its classes (medsynth.metrics.retrieval.chexpert_at_k semantics).
Neighbours: the k most similar other reports (self excluded); reports tied at the k-th place share its credit, so
the score does not depend on the selection's row order (which is grouped by class); the counting is
medsynth.metrics.retrieval.chexpert_at_k's.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..errors import MedsynthError
from ..io import sha256_file, write_figure
from ..manifest import CHEXPERT_LABELS
from ..metrics.retrieval import bag_of_words_iou, chexpert_at_k, cosine_matrix

PAPER = "chambon2022"
EXTRACTION_COLUMNS = {"cls": "CLS", "mean": "mean", "pooler": "pooler", "model_specific": "model specific"}
BASELINES = {"bag_of_words": "Bag of words (IoU)", "tfidf": "TF-IDF"}
# Table 2 names the CLIP row "CLIP text encoder"; Table 3 names its column "CLIP".
TABLE3_ALIASES = {"CLIP text encoder": "CLIP"}
# What "share its CheXpert label" means (the spec: "the fraction of its k most similar other reports (self
# excluded) that share its CheXpert label"); the rules differ by ~13 macro points on the same embeddings, so every
# cell prints its rule.
LABEL_RULES = {
    "sampled_class": "drawn class; a neighbour shares it when positive for that class",
    "equal_label": "drawn class; a neighbour shares it when drawn for the same class (equal labels)",
    "label_set": "all positive classes; a neighbour shares when the label sets intersect",
}
_SLUG = re.compile(r"[^a-z0-9]+")


def slug(name: str) -> str:
    """File-system / wildcard name of an encoder: 'MiniLM (offline)' -> 'minilm_offline'."""
    out = _SLUG.sub("_", name.lower()).strip("_")
    if not out:
        raise MedsynthError(f"encoder name {name!r} has no letters or digits")
    return out


def encoder_entries(study: dict) -> dict[str, dict]:
    """slug -> encoder entry with defaults filled; names must give distinct slugs."""
    out: dict[str, dict] = {}
    for raw in study.get("encoders", []):
        entry = {"trust_remote_code": False, "random_init": False, **raw}
        for ext in entry["extractions"]:
            if ext not in EXTRACTION_COLUMNS:
                raise MedsynthError(f"config error at 'chambon2022.text_study.encoders': encoder '{entry['name']}' "
                                    f"extraction '{ext}' is not one of {', '.join(EXTRACTION_COLUMNS)}")
        key = slug(entry["name"])
        if key in out or key in BASELINES:
            raise MedsynthError(f"config error at 'chambon2022.text_study.encoders': name '{entry['name']}' gives "
                                f"file name '{key}', already used")
        out[key] = entry
    return out


# ---------------------------------------------------------------------------------------------- report selection

def select_reports(manifest: pd.DataFrame, section: str, per_class: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """(selected reports: id, text, label, positives; summary with exclusion counts). See the module docstring."""
    missing = [c for c in [section, "id", *CHEXPERT_LABELS] if c not in manifest.columns]
    if missing:
        raise MedsynthError(f"report manifest lacks column(s) {missing}; the text study needs '{section}' and the "
                            "14 CheXpert label columns")
    manifest = manifest.reset_index(drop=True)
    text = manifest[section].fillna("").astype(str).str.strip()
    values = manifest[CHEXPERT_LABELS].apply(pd.to_numeric, errors="coerce")
    positive = values.eq(1.0)
    has_text, has_label = text.ne(""), positive.any(axis=1)
    # Image-level manifests (MIMIC-CXR) repeat a study's report once per image: keep one copy per patient and text,
    # or a report would find its own duplicate as nearest neighbour.
    owner = manifest["patient_id"] if "patient_id" in manifest.columns else manifest["id"]
    duplicate = pd.Series(list(zip(owner, text))).duplicated().to_numpy() & has_text.to_numpy()
    pool = manifest.index[has_text & has_label & ~duplicate]
    rng = np.random.default_rng(seed)
    available = {c: int(positive.loc[pool, c].sum()) for c in CHEXPERT_LABELS}
    order = sorted(CHEXPERT_LABELS, key=lambda c: (available[c], CHEXPERT_LABELS.index(c)))
    taken: set = set()
    rows = []
    for cls in order:
        candidates = [i for i in pool if positive.at[i, cls] and i not in taken]
        chosen = rng.permutation(len(candidates))[:per_class]
        for j in sorted(chosen):
            i = candidates[j]
            taken.add(i)
            rows.append({"id": manifest.at[i, "id"], "text": text.at[i], "label": cls,
                         "positives": [c for c in CHEXPERT_LABELS if positive.at[i, c]]})
    selected = pd.DataFrame(rows, columns=["id", "text", "label", "positives"])
    summary = {
        "reports_in_manifest": int(len(manifest)),
        "excluded_empty_section": int((~has_text).sum()),
        "excluded_duplicate_text": int(duplicate.sum()),
        "excluded_no_positive_label": int((has_text & ~has_label & ~duplicate).sum()),
        "eligible": int(len(pool)),
        "selected": int(len(selected)),
        "per_class": int(per_class),
        "section": section,
        "seed": int(seed),
        "selected_per_class": {c: int((selected.label == c).sum()) for c in CHEXPERT_LABELS},
        "eligible_per_class": available,
    }
    if len(selected) < 2:
        raise MedsynthError(f"only {len(selected)} report(s) with a non-empty {section} and a positive CheXpert label; "
                            "CheXpert@k needs at least 2")
    return selected, summary


# ------------------------------------------------------------------------------------------------------ scoring

def _in_label_order(result: dict) -> dict:
    order = [c for c in CHEXPERT_LABELS if c in result["per_class"]]
    order += sorted(set(result["per_class"]) - set(order), key=str)
    return {**result, "per_class": {c: result["per_class"][c] for c in order}}


def chexpert_at_k_drawn(similarity, labels, positives, k: int) -> dict:
    """CheXpert@k where report i's label is its drawn class and neighbour j shares it if j is positive for it
    (medsynth.metrics.retrieval.chexpert_at_k with neighbour_labels = the positive sets)."""
    return _in_label_order(chexpert_at_k(similarity, [[lab] for lab in labels], k,
                                         neighbour_labels=[frozenset(p) for p in positives]))


def score(similarity, selected: pd.DataFrame, k: int, label_rule: str) -> dict:
    if label_rule == "sampled_class":
        out = chexpert_at_k_drawn(similarity, list(selected.label), list(selected.positives), k)
    elif label_rule == "equal_label":
        out = _in_label_order(chexpert_at_k(similarity, [[lab] for lab in selected.label], k))
    elif label_rule == "label_set":
        out = _in_label_order(chexpert_at_k(similarity, [frozenset(p) for p in selected.positives], k))
    else:
        raise MedsynthError(f"unknown label_rule '{label_rule}'; choose one of {', '.join(LABEL_RULES)}")
    counts = (selected.label.value_counts() if label_rule != "label_set"
              else pd.Series([c for p in selected.positives for c in p]).value_counts())
    out["class_counts"] = {c: int(counts.get(c, 0)) for c in out["per_class"]}
    return out


def baseline_similarity(name: str, texts: list[str]) -> np.ndarray:
    if name == "bag_of_words":
        return bag_of_words_iou(texts)
    if name == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        # Same tokens as the bag-of-words baseline (lower-cased alphanumeric runs), sublinear tf, l2 rows.
        vectors = TfidfVectorizer(token_pattern=r"[a-z0-9]+", lowercase=True, sublinear_tf=True).fit_transform(texts)
        return cosine_matrix(vectors.toarray())
    raise MedsynthError(f"unknown baseline '{name}'; choose one of {', '.join(BASELINES)}")


# ------------------------------------------------------------------------------------------------- embeddings

def model_name(entry: dict) -> str:
    return "embedded:minilm" if entry["model"] == "minilm" else entry["model"]


def weights_sha256(name: str) -> str | None:
    """sha256 of the weight file a model entry loads (local folder or the HF cache); None if not found."""
    from ..models.loading import resolve_name

    resolved = Path(resolve_name(name))
    files = ("model.safetensors", "pytorch_model.bin")
    if resolved.is_dir():
        paths = [resolved / f for f in files if (resolved / f).is_file()]
    else:
        from huggingface_hub import try_to_load_from_cache

        hits = [try_to_load_from_cache(name, f) for f in files]
        paths = [Path(h) for h in hits if isinstance(h, str)]
    if not paths:
        return None
    return sha256_file(paths[0])


def build_encoder(entry: dict, extraction: str, max_length: int, seed: int):
    """(ConditioningTextEncoder, tokenizer, provenance) for one encoder entry and extraction method.

    `random_init`: the entry's architecture (its config) with weights drawn from `seed` — the untrained control.
    Provenance: encoder (row name), model (id / path as configured), weights (what was loaded, in words) and
    weights_sha256 (of the weight file; None for a random init or when the file cannot be found).
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from ..models.loading import load_text_encoder, pretrained, resolve_name, wrap_encoder
    from ..models.text_encoders import _model_from_config

    name = model_name(entry)
    # Retrieval embeds documents: padding is always masked (unlike SD conditioning, where CLIP sees no mask).
    load_entry = {"name": name, "extraction": extraction, "trust_remote_code": bool(entry["trust_remote_code"]),
                  "max_length": max_length, "use_attention_mask": True,
                  **({"revision": entry["revision"]} if entry.get("revision") else {})}
    if entry["random_init"]:
        config = pretrained(AutoConfig.from_pretrained, load_entry, "text encoder config")
        torch.manual_seed(seed)
        model = _model_from_config(config)
        tokenizer = pretrained(AutoTokenizer.from_pretrained, load_entry, "tokenizer")
        encoder = wrap_encoder(model, load_entry, source=resolve_name(name))
        digest, weights = None, f"random init (seed {seed}) of {name}'s architecture"
    else:
        encoder, tokenizer = load_text_encoder(load_entry)
        digest = weights_sha256(name)
        weights = f"pretrained {name}" + ("" if digest else " (weight file not found for hashing)")
    limit = getattr(encoder.encoder.config, "max_position_embeddings", max_length)
    tokenizer.model_max_length = min(max_length, limit)  # CLIP has 77 positions, BERTs 512
    provenance = {"encoder": entry["name"], "model": name, "weights": weights, "weights_sha256": digest,
                  "extraction": extraction, "max_length": tokenizer.model_max_length}
    return encoder, tokenizer, provenance


def embed_all(entry: dict, texts: list[str], max_length: int, batch_size: int,
              seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """({extraction: (N, D) float32}, provenance) from ONE forward pass per batch for all the entry's extractions.

    Batches pad to their longest text (texts sorted by length), not to max_length: with the padding masked the
    states of real tokens do not change, and short impressions then cost a few tokens instead of max_length.
    'model_specific' of a model that ships its own text-embedding method (CXR-BERT-specialized's remote-code
    CXRBertModel: `get_projected_text_embeddings`, its projected and normalised [CLS]) calls that method;
    otherwise it is the generic model-specific extraction (CLIP's pooled EOS state, a sentence-transformers
    folder's own pooling), see medsynth.models.text_encoders.extract.
    """
    import torch

    from ..models.text_encoders import extract

    encoder, tokenizer, provenance = build_encoder(entry, entry["extractions"][0], max_length, seed)
    model = encoder.encoder.eval()
    configs = {ext: SimpleNamespace(extraction=ext, st_pooling=encoder.config.st_pooling,
                                    st_normalize=encoder.config.st_normalize) for ext in entry["extractions"]}
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True).input_ids]
    order = np.argsort(lengths, kind="stable")
    chunks: dict[str, list] = {ext: [] for ext in configs}
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer([texts[i] for i in order[start:start + batch_size]], padding="longest",
                              truncation=True, return_tensors="pt")
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
            for ext, cfg in configs.items():
                if ext == "model_specific" and hasattr(model, "get_projected_text_embeddings"):
                    vec = model.get_projected_text_embeddings(input_ids=batch.input_ids,
                                                              attention_mask=batch.attention_mask)
                else:
                    vec = extract(out, batch.attention_mask, cfg, model)[:, 0]
                chunks[ext].append(vec.float().numpy())
    inverse = np.argsort(order)
    vectors = {ext: np.concatenate(c)[inverse].astype(np.float32) for ext, c in chunks.items()}
    provenance.pop("extraction")
    return vectors, provenance


# ---------------------------------------------------------------------------------------------- result records

def result_record(result: dict, provenance: dict, *, method: str, dataset: str, label_rule: str, seed: int,
                  scale: str, summary: dict):
    from ..metrics.provenance import MetricRecord

    k = result["k"]
    rule = LABEL_RULES[label_rule]
    return MetricRecord(
        metric=f"chexpert@{k}", value=result["macro"], n=result["n"], backbone=provenance.get("model", method),
        weights_sha256=provenance.get("weights_sha256"), seed=seed,
        definition=f"macro CheXpert@{k} over classes; cosine similarity; self excluded; labels: {rule}",
        extra={"method": method, "dataset": dataset, "section": summary["section"], "label_rule": label_rule,
               "scale": scale, "per_class": result["per_class"], "class_counts": result["class_counts"],
               "labels_used": list(result["per_class"]), "k": k, "selection": summary, **provenance})


def _provenance(rec, column_note: str | None = None) -> dict:
    x = rec.extra
    out = {"dataset": f"{x['dataset']} ({x['section']})", "n": rec.n, "method": x["method"], "k": x["k"],
           "encoder": x.get("model", x["method"]), "weights": x.get("weights", "none (no learned weights)"),
           "weights_sha256": rec.weights_sha256 or "—", "label rule": f"{x['label_rule']}: {LABEL_RULES.get(x['label_rule'], '?')}", "seed": rec.seed,
           "scale": x["scale"]}
    if "extraction" in x:
        out["extraction"] = x["extraction"]
    if column_note:
        out["note"] = column_note
    return out


def table_cells(records: list, table3_columns: list[str]) -> list[dict]:
    """Table 2 (macro, encoder x extraction; baselines under 'model specific') and Table 3 (per class, each encoder
    that has a column there at its best extraction; Base = bag of words). Values in % as printed in the paper."""
    from ..report.cells import make_cell

    cells = []
    best: dict[str, object] = {}
    for rec in records:
        x = rec.extra
        if x.get("baseline"):
            cells.append(make_cell(PAPER, "table2", BASELINES[x["baseline"]], "model specific", 100 * rec.value,
                                   provenance=_provenance(rec, "baseline similarity, no extraction method")))
            continue
        cells.append(make_cell(PAPER, "table2", x["encoder"], EXTRACTION_COLUMNS[x["extraction"]], 100 * rec.value,
                               provenance=_provenance(rec)))
        if x["encoder"] not in best or rec.value > best[x["encoder"]].value:
            best[x["encoder"]] = rec
    table3 = [(TABLE3_ALIASES.get(name, name), rec) for name, rec in best.items()]
    table3 += [("Base", rec) for rec in records if rec.extra.get("baseline") == "bag_of_words"]
    for column, rec in table3:
        if column not in table3_columns:
            continue  # the paper's Table 3 has no column for it; the per-class figure shows it
        prov = _provenance(rec, "best extraction by macro" if column != "Base" else "bag-of-words IoU")
        for cls, value in rec.extra["per_class"].items():
            cells.append(make_cell(PAPER, "table3", cls, column, 100 * value,
                                   provenance={**prov, "n": rec.extra["class_counts"][cls]}))
        cells.append(make_cell(PAPER, "table3", "Macro", column, 100 * rec.value, provenance=prov))
    return cells


def per_class_frame(records: list) -> pd.DataFrame:
    """Classes x methods (%), every encoder at its best extraction plus the baselines, with a Macro row."""
    cols: dict[str, pd.Series] = {}
    for rec in records:
        x = rec.extra
        label = BASELINES[x["baseline"]] if x.get("baseline") else f"{x['encoder']} [{x['extraction']}]"
        key = label if x.get("baseline") else x["encoder"]
        if key in cols and cols[key]["Macro"] >= 100 * rec.value:
            continue
        cols[key] = pd.Series({**{c: 100 * v for c, v in x["per_class"].items()}, "Macro": 100 * rec.value},
                              name=label)
    frame = pd.DataFrame({s.name: s for s in cols.values()})
    order = [c for c in CHEXPERT_LABELS if c in frame.index] + ["Macro"]
    return frame.loc[order]


def tsne_coordinates(vectors: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of embeddings (cosine distance), seeded; perplexity capped below N/3 for small sets."""
    from sklearn.manifold import TSNE

    n = len(vectors)
    if n < 4:
        raise MedsynthError(f"t-SNE needs at least 4 reports, got {n}")
    return TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), metric="cosine", init="pca",
                random_state=seed).fit_transform(np.asarray(vectors, dtype=np.float64))


# ---------------------------------------------------------------------------------------------------- figures

def _label_colours(labels) -> dict:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    present = [c for c in CHEXPERT_LABELS if c in set(labels)]
    return {c: cmap(CHEXPERT_LABELS.index(c) % 20) for c in present}


def plot_tsne(panels: dict[str, tuple[np.ndarray, float]], labels, title: str, path, k: int = 10) -> None:
    """One t-SNE panel per extraction ({extraction: (coords N x 2, macro CheXpert@k)}), points coloured by label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    colours = _label_colours(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 2.2, 4.4), squeeze=False)
    for ax, (ext, (xy, macro)) in zip(axes[0], panels.items()):
        for cls, colour in colours.items():
            sel = labels == cls
            ax.scatter(xy[sel, 0], xy[sel, 1], s=9, color=colour, label=f"{cls} ({int(sel.sum())})")
        ax.set_title(f"{ext}: macro CheXpert@{k} {100 * macro:.1f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    write_figure(fig, path)


def plot_per_class(frame: pd.DataFrame, title: str, path) -> None:
    """Heatmap of CheXpert@k (%) classes x methods, numbers printed in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 * frame.shape[1] + 3.5, 0.42 * frame.shape[0] + 1.8))
    ax.imshow(frame.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(frame.shape[1]), frame.columns, rotation=25, ha="right", fontsize=8)
    ax.set_yticks(range(frame.shape[0]), frame.index, fontsize=8)
    for (i, j), v in np.ndenumerate(frame.to_numpy(dtype=float)):
        ax.text(j, i, "—" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=7,
                color="white" if v < 60 else "black")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    write_figure(fig, path)
