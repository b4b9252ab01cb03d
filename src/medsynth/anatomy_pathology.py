"""Anatomy-pathology prompting (chen2024, Module 1): vocabularies mined from radiology reports, and findings
written from (anatomy, pathology) word pairs by an LLM or, offline without one, a deterministic template writer.

Mining follows the paper: words of the findings + impression text, counted, the top-K by frequency kept, non-medical
words dropped and the rest split into anatomy and pathology. The paper did the last two steps by hand; here they are
the lexicons below (CXR anatomy and pathology words, the paper's examples included), so the split is reproducible.
Negated mentions ("no effusion") are not counted: the prompts must be positive findings. Size and severity words
(small, moderate, ...) are neither anatomy nor pathology.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from .errors import MedsynthError

ANATOMY = frozenset("""
pleural lung lungs heart diaphragm aorta aortic mediastinum mediastinal hilar hila hilum cardiac costophrenic angle
angles lobe lobes upper lower middle base bases basilar apex apical apices chest thorax thoracic rib ribs spine
spinal vertebral vertebrae clavicle clavicles trachea tracheal bronchi bronchial airway airways neck junction
hemidiaphragm hemidiaphragms silhouette pulmonary vasculature vascular vessels parenchyma parenchymal interstitial
lingula retrocardiac perihilar subsegmental segmental right left bilateral unilateral abdomen soft tissue tissues
shoulder shoulders sternum sternal pericardial cardiomediastinal stomach bowel paratracheal azygos atrium ventricle
costal subpulmonic fissure fissures lateral posterior anterior central peripheral zone zones field fields
""".split())
PATHOLOGY = frozenset("""
effusion effusions pneumothorax opacity opacities consolidation consolidations atelectasis atelectatic edema
cardiomegaly enlarged enlargement nodule nodules nodular mass masses emphysema emphysematous hyperinflation
hyperinflated fibrosis fibrotic scarring scar granuloma granulomas calcified calcification calcifications infiltrate
infiltrates pneumonia infection thickening blunting blunted fracture fractures deformity degenerative tortuous
tortuosity prominence prominent widening widened diffuse streaky patchy hazy focal airspace lucency lucent collapse
congestion cavitation cyst cysts lesion lesions fluid hernia dilated dilatation elevated elevation displacement
""".split())
NEGATION = re.compile(r"\b(no|without|negative for|free of|clear of|resolved)\b[^.;]*", re.I)
WORD = re.compile(r"[a-z]+")


def positive_words(text: str) -> list[str]:
    """Lower-case words of a report with negated clauses ("no pleural effusion or pneumothorax") removed."""
    return WORD.findall(NEGATION.sub(" ", str(text or "")).lower())


def mine_vocabulary(texts, top_k: int = 300, n_anatomy: int = 75, n_pathology: int = 44) -> pd.DataFrame:
    """(word, count, category, rank) of the anatomy and pathology vocabularies of `texts`: the top_k most frequent
    words, split by the lexicons, at most n_anatomy / n_pathology each (most frequent first)."""
    counts = Counter(w for t in texts for w in positive_words(t))
    if not counts:
        raise MedsynthError("no report text to mine a vocabulary from (empty findings/impression)")
    top = [w for w, _ in counts.most_common(top_k)]
    rows = []
    for category, lexicon, limit in (("anatomy", ANATOMY, n_anatomy), ("pathology", PATHOLOGY, n_pathology)):
        words = [w for w in top if w in lexicon][:limit]
        rows += [{"word": w, "count": counts[w], "category": category, "rank": i + 1} for i, w in enumerate(words)]
    vocab = pd.DataFrame(rows, columns=["word", "count", "category", "rank"])
    for category in ("anatomy", "pathology"):
        if not (vocab["category"] == category).any():
            raise MedsynthError(f"the reports have no {category} words among their {top_k} most frequent words")
    return vocab


def report_texts(df: pd.DataFrame) -> list[str]:
    """findings + impression of each manifest row (the `prompt` column where a dataset has no sections)."""
    cols = [c for c in ("findings", "impression") if c in df.columns]
    if not cols:
        cols = ["prompt"]
    return df[cols].fillna("").astype(str).agg(" ".join, axis=1).tolist()


def word_pairs(vocab: pd.DataFrame, n: int, n_anatomy: int = 2, n_pathology: int = 2, seed: int = 0) -> list[dict]:
    """n seeded draws of (anatomy words, pathology words), each word drawn with probability ~ its frequency."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pick = {}
        for category, k in (("anatomy", n_anatomy), ("pathology", n_pathology)):
            sub = vocab[vocab["category"] == category]
            k = min(k, len(sub))
            p = sub["count"].to_numpy(float) / sub["count"].sum()
            pick[category] = sub["word"].to_numpy()[rng.choice(len(sub), k, replace=False, p=p)].tolist()
        out.append(pick)
    return out


INSTRUCTION = ("You are a radiologist. Anatomy words: {anatomy}. Pathology words: {pathology}. Write about "
               "{words} words of positive chest X-ray findings that use exactly these anatomy and pathology words. "
               "No negative sentences. It must be reasonable for a real chest X-ray. Answer with the findings only.")


def template_findings(anatomy: list[str], pathology: list[str]) -> str:
    """The deterministic offline writer: one positive sentence using every word."""
    return (f"{' and '.join(pathology).capitalize()} observed in the region of the "
            f"{' and '.join(anatomy)}.")


def clean_findings(text: str) -> str:
    text = re.sub(r"^\s*(findings|answer)\s*:\s*", "", str(text).strip(), flags=re.I)
    return " ".join(text.split())


def write_prompts(pairs: list[dict], writer: str = "template", llm=None, max_new_tokens: int = 60,
                  words: int = 50) -> pd.DataFrame:
    """One findings text per (anatomy, pathology) pair. writer `llm`: greedy decoding of `llm` = (model, tokenizer)
    with the paper's instruction in the model's chat template; `template`: template_findings. Each row records
    whether the text uses all its words."""
    rows = []
    for pair in pairs:
        a, p = pair["anatomy"], pair["pathology"]
        if writer == "llm":
            if llm is None:
                raise MedsynthError("prompt writer 'llm' needs an llm")
            text = clean_findings(_generate(llm, INSTRUCTION.format(anatomy=", ".join(a), pathology=", ".join(p),
                                                                    words=words), max_new_tokens))
        elif writer == "template":
            text = template_findings(a, p)
        else:
            raise MedsynthError(f"unknown prompt writer '{writer}' (llm | template)")
        low = text.lower()
        rows.append({"anatomy": ",".join(a), "pathology": ",".join(p), "prompt": text, "writer": writer,
                     "uses_all_words": all(w in low for w in a + p)})
    return pd.DataFrame(rows)


def _generate(llm, instruction: str, max_new_tokens: int) -> str:
    import torch

    model, tokenizer = llm
    if getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template([{"role": "user", "content": instruction}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
    else:
        enc = tokenizer(instruction, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
