"""Text control of a finding (medsynth.papers.text_control): prompt arms in the cohort's report language, the
finding's own region from the phantom's lesion bitfield (patient's right = image left), the region-vs-mirror
contrast that a global change cannot fake, and the verdict against the null arm."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from medsynth.errors import MedsynthError
from medsynth.papers import text_control as tc
from medsynth.phantom.findings import FINDING_BITS

ROOT = Path(__file__).resolve().parents[1]
EFF, EMPH = 1 << FINDING_BITS["effusion"], 1 << FINDING_BITS["emphysema"]


def _sentences(report):
    text, impression = report[len("FINDINGS: "):].split(" IMPRESSION: ")
    return text.split(". "), impression


def test_prompt_arms_differ_only_by_the_finding_or_a_matched_rewording():
    normal, finding, null = tc.finding_prompt_arms(6)
    assert len(normal) == len(finding) == len(null) == 6 and len(set(normal + finding + null)) == 18
    assert all(p.startswith("FINDINGS: ") and " IMPRESSION: " in p for p in normal + finding + null)
    assert all(p.endswith("IMPRESSION: Large right pleural effusion.") for p in finding)
    assert not any("right pleural effusion" in p.lower() for p in normal + null)
    for n, f, r in zip(normal, finding, null):
        (ns, ni), (fs, fi), (rs, ri) = _sentences(n), _sentences(f), _sentences(r)
        assert "large right pleural effusion" in fs[0].lower() and fs[1:] != ns   # the finding's sentence first
        assert len(fs) == len(ns) + 1 and len(rs) == len(ns)
        kept = [a == b for a, b in zip(ns, fs[1:])]
        assert sum(not k for k in kept) <= 2          # only the effusion negation (and 'lungs are clear') changed
        assert "pneumothorax" in " ".join(fs) and "no pleural effusion" not in f.lower()
        assert sum(a != b for a, b in zip(ns, rs)) == 2 and ni != ri   # heart sentence + negation + impression
    assert tc.finding_prompt_arms(6) == (normal, finding, null)   # seeded
    assert tc.split_arms(normal + finding + null, "right pleural effusion") == (normal, finding, null)
    with pytest.raises(MedsynthError, match="2K without"):
        tc.split_arms(normal + finding, "right pleural effusion")
    with pytest.raises(MedsynthError):
        tc.add_effusion("no report structure")


def test_config_effusion_prompt_set_is_the_three_arms():
    spec = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["choksi2025"]["prompt_sets"]["effusion"]
    normal, finding, null = tc.split_arms(spec["prompts"], "right pleural effusion")
    assert (normal, finding, null) == tc.finding_prompt_arms(len(finding))
    assert spec["n_per_prompt"] >= 2   # seed spread needs two seeds per prompt


def _cohort(tmp_path, size=16):
    """Masks as the phantom writes them: a bitfield. Right effusion in the image's lower left, every patient with
    emphysema bits over both upper halves (to be ignored), one bilateral and one left effusion."""
    rows = []
    def write(name, bits, image=None):
        Image.fromarray(bits.astype(np.uint8)).save(tmp_path / f"{name}_m.png")
        img = image if image is not None else np.full((size, size), 100, np.uint8)
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / f"{name}_i.png")
        return {"mask": f"{name}_m.png", "image": f"{name}_i.png"}
    base = np.zeros((size, size), np.uint8)
    base[:6, 2:14] |= EMPH
    for k in range(3):   # right effusion: image left, lower rows
        bits = base.copy(); bits[10:14, 2:6] |= EFF
        img = np.full((size, size), 100, np.uint8); img[10:14, 2:6] = 140
        rows.append({**write(f"r{k}", bits, img), "effusion_side": "right", "effusion_severity": "large",
                     "finding_list": "emphysema;effusion"})
    bits = base.copy(); bits[10:14, 2:6] |= EFF; bits[10:14, 10:14] |= EFF
    rows.append({**write("b", bits), "effusion_side": "bilateral", "effusion_severity": "moderate",
                 "finding_list": "effusion"})
    bits = base.copy(); bits[8:10, 10:14] |= EFF
    rows.append({**write("l", bits), "effusion_side": "left", "effusion_severity": "large", "finding_list": "effusion"})
    bits = base.copy(); bits[12:14, 2:4] |= EFF
    rows.append({**write("s", bits), "effusion_side": "right", "effusion_severity": "small", "finding_list": "effusion"})
    for k in range(3):
        rows.append({**write(f"n{k}", np.zeros((size, size)), np.full((size, size), 100 + k)), "effusion_side": "",
                     "effusion_severity": "", "finding_list": "no_finding"})
    rows.append({"mask": "", "image": "n0_i.png", "effusion_side": "right", "effusion_severity": "large",
                 "finding_list": "effusion"})   # no mask: not counted for the region
    return pd.DataFrame(rows)


def test_region_is_the_effusion_bit_on_the_prompted_side_and_control_its_mirror(tmp_path):
    df = _cohort(tmp_path)
    region, control, n = tc.finding_region(df, tmp_path, 16, "effusion", "right", ("moderate", "large"))
    expected = np.zeros((16, 16), bool); expected[10:14, 2:6] = True
    assert n == 4   # 3 right + 1 bilateral (its right half); not the left one, the small one or the unmasked one
    assert (region == expected).all()                      # emphysema bits and the bilateral's left half ignored
    assert (control == expected[:, ::-1]).all() and not (region & control).any()
    left, left_control, n_left = tc.finding_region(df, tmp_path, 16, "effusion", "left", ("large",))
    assert n_left == 1 and left[8:10, 10:14].all() and left[:, :8].sum() == 0
    assert tc.finding_region(df.assign(effusion_side=""), tmp_path, 16) == (None, None, 0)


def test_contrast_sees_a_local_change_and_not_a_global_one():
    rng = np.random.default_rng(0)
    region = np.zeros((16, 16), bool); region[10:14, 2:6] = True
    control = region[:, ::-1]
    ref = rng.normal(100, 20, (20, 2, 16, 16))   # 20 prompts x 2 seeds
    local = ref + rng.normal(0, 2, ref.shape); local[..., region] += 10
    glob = ref * 1.3 + 25   # a whole-image change: large |difference| everywhere, nothing where the finding lives
    e = tc.region_contrast(ref, local, region, control)
    g = tc.region_contrast(ref, glob, region, control)
    assert e["contrast"] == pytest.approx(10, abs=1.5) and e["n_prompts"] == 20 and e["n_samples"] == 40
    assert e["contrast_se"] < 1 and len(e["per_prompt"]) == 20
    assert abs(g["contrast"]) < 3 * g["contrast_se"] and g["mean_abs_diff"] > 3 * e["mean_abs_diff"]
    null = tc.region_contrast(ref, ref + rng.normal(0, 2, ref.shape), region, control)
    v = tc.verdict(e, null)
    assert v["localised"] is True and v["z_vs_null"] > 2
    assert tc.verdict(g, null)["localised"] is False
    assert tc.verdict(e, null, sign=-1)["localised"] is False   # a darkening finding would need the other sign
    assert tc.verdict({**e, "contrast_se": None}, null)["localised"] is None
    # the prompt is the unit: seeds that share a prompt-level shift do not shrink the standard error
    shift = rng.normal(0, 8, (20, 1))
    per_prompt = ref.copy(); per_prompt[..., region] += shift[..., None] + 10
    wide = tc.region_contrast(ref, per_prompt, region, control)
    assert wide["contrast_se"] == pytest.approx(np.std(shift, ddof=1) / np.sqrt(20), rel=1e-6)
    assert tc.region_contrast(ref[:, 0], local[:, 0], region, control)["n_samples"] == 20   # (N, H, W) works
    with pytest.raises(MedsynthError):
        tc.region_contrast(ref, local[:3], region, control)


def test_verdict_pairs_the_arms_by_report():
    """Rewording a report moves its region in both arms alike (the arms are the same reports): the null comparison
    is paired by report, so that shared movement is not noise; arms that differ only by noise stay not localised."""
    rng = np.random.default_rng(1)
    k = 16
    wording = rng.normal(0, 20, k)                      # each report's rewording moves the region, in both arms
    effect = {"contrast_se": 3.0, "per_prompt": list(wording + 8 + rng.normal(0, 3, k))}
    null = {"contrast_se": 5.0, "per_prompt": list(wording + rng.normal(0, 3, k))}
    for arm in (effect, null):
        arm["contrast"] = float(np.mean(arm["per_prompt"]))
    v = tc.verdict({**effect, "contrast_se": 1.0}, null)
    d = np.subtract(effect["per_prompt"], null["per_prompt"])
    assert v["z_vs_null"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(k)))
    assert v["z_vs_null"] > 4 > v["z_vs_null_unpaired"] and v["z_vs_null_test"].startswith("paired")
    same = {**null, "per_prompt": list(np.asarray(null["per_prompt"]) + rng.normal(0, 3, k))}
    same["contrast"] = float(np.mean(same["per_prompt"]))
    assert abs(tc.verdict({**same, "contrast_se": 1.0}, null)["z_vs_null"]) < 3
    # arms of different reports (lengths differ): the unpaired test
    short = {**null, "per_prompt": null["per_prompt"][:8]}
    assert tc.verdict(effect, short)["z_vs_null_test"].startswith("unpaired")


def test_seed_spread_and_cohort_reference(tmp_path):
    imgs = np.zeros((2, 3, 4, 4)); imgs[:, 1] = 3.0; imgs[:, 2] = 6.0   # seeds 0, 3, 6 -> SD 3
    region = np.zeros((4, 4), bool); region[0, 0] = True
    assert tc.seed_spread(imgs, region) == {"whole_image": pytest.approx(3.0), "region": pytest.approx(3.0)}
    with pytest.raises(MedsynthError):
        tc.seed_spread(imgs[:, :1])
    df = _cohort(tmp_path)
    region, control, _ = tc.finding_region(df, tmp_path, 16)
    ref = tc.cohort_reference(df, tmp_path, 16, region, control)
    # right-sided large/moderate effusions only (3 images with +40 in the region) vs the 3 normals (mean 101)
    assert ref["n_finding"] == 4 and ref["n_normal"] == 3   # includes the unmasked right-sided one (image n0: 100)
    assert ref["contrast"] == pytest.approx(30.0, abs=1.0) and ref["between_patient_sd"]["whole_image"] == pytest.approx(1.0)
