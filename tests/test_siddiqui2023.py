"""siddiqui2023: edit sets (what the generic edit_images rule edits), VA maps (masked difference, gradient
saliency), their localisation scores against lesion masks, and the paper's VA scoring on made-up images whose
lesion is known."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medsynth.attribution import difference_map, gradient_saliency
from medsynth.errors import MedsynthError
from medsynth.metrics.localisation import mean_se, ncc, pixel_auroc
from medsynth.papers import siddiqui2023 as S
from medsynth.sampling.edit_sets import resolve_edit_set


def _manifest():
    return pd.DataFrame({
        "id": [f"i{k}" for k in range(8)], "image": [f"img/{k}.png" for k in range(8)],
        "split": ["train", "train", "val", "test", "test", "train", "val", "test"],
        "prompt": ["report"] * 8, "source": ["/raw"] * 8, "mask": [f"m/{k}.png" for k in range(8)],
        "No Finding": [1, 1, 1, 0, 0, 0, 0, 1], "Pleural Effusion": [0, 0, 0, 1, 1, 1, 0, 0],
        "Lung Opacity": [0, 0, 0, 1, 0, 0, 1, 0], "effusion_side": ["", "", "", "right", "left", "right", "", ""]})


def test_edit_set_rows_are_sources_x_prompts_x_strengths_x_seeds():
    spec = {"labels": ["Pleural Effusion", "Lung Opacity"], "prompts": ["normal chest x ray"],
            "strengths": [0.5, 0.8], "seeds": [0, 1], "steps": 4, "guidance_scale": 2.0}
    t = resolve_edit_set(spec, _manifest())
    # effusion: i3, i4, i5; opacity: i6 (i3 was taken by effusion already)
    assert sorted(t["source_id"].unique()) == ["i3", "i4", "i5", "i6"] and len(t) == 4 * 2 * 2
    assert t.groupby("source_id")["source_label"].first().to_dict() == {
        "i3": "Pleural Effusion", "i4": "Pleural Effusion", "i5": "Pleural Effusion", "i6": "Lung Opacity"}
    assert set(t["strength"]) == {0.5, 0.8} and set(t["seed"]) == {0, 1}
    assert t.loc[t["source_id"] == "i3", "source_image"].iloc[0] == "img/3.png"
    assert t["source_prompt"].eq("report").all() and "source" not in t and t["mask"].iloc[0].startswith("m/")
    excl = resolve_edit_set({**spec, "exclusive": True}, _manifest())
    assert "i3" not in set(excl["source_id"])           # positive for both listed labels
    by_class = resolve_edit_set({**spec, "labels": ["right"], "label_column": "effusion_side"}, _manifest())
    assert sorted(by_class["source_id"].unique()) == ["i3", "i5"] and by_class["source_label"].eq("right").all()


def test_edit_set_pick_is_seeded_and_prompts_fill_from_the_row():
    spec = {"labels": ["Pleural Effusion"], "per_label": 2, "prompts": ["{effusion_side} pleural effusion"],
            "strengths": [0.85], "steps": 4, "guidance_scale": 2.0, "splits": ["train", "test"]}
    a, b = resolve_edit_set(spec, _manifest(), seed=3), resolve_edit_set(spec, _manifest(), seed=3)
    assert a.equals(b) and a["source_id"].nunique() == 2
    assert set(a["prompt"]) <= {"right pleural effusion", "left pleural effusion"}
    with pytest.raises(MedsynthError, match="no value"):
        resolve_edit_set({**spec, "prompts": ["{no_such_column} effusion"]}, _manifest())
    with pytest.raises(MedsynthError, match="no source image"):
        resolve_edit_set({**spec, "labels": ["Lung Opacity"], "splits": ["train"]}, _manifest())
    with pytest.raises(MedsynthError, match="not in the manifest"):
        resolve_edit_set({**spec, "labels": ["Edema"]}, _manifest())
    with pytest.raises(MedsynthError, match="strengths"):
        resolve_edit_set({**spec, "strengths": [0.0]}, _manifest())


def test_localisation_scores():
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    assert pixel_auroc(mask.astype(float), mask) == 1.0 and ncc(mask.astype(float), mask) == pytest.approx(1.0)
    assert pixel_auroc(1.0 - mask, mask) == 0.0 and ncc(1.0 - mask, mask) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    assert abs(pixel_auroc(rng.random((64, 64)), rng.random((64, 64)) > 0.8) - 0.5) < 0.05
    assert pixel_auroc(np.ones((16, 16)), mask) is None and ncc(np.ones((16, 16)), mask) is None
    assert pixel_auroc(mask.astype(float), np.zeros((16, 16))) is None      # no lesion pixel: undefined
    ties = np.zeros((2, 2)); ties[0, 0] = 1.0                                # Mann-Whitney: ties count half
    assert pixel_auroc(ties, np.array([[1, 1], [0, 0]])) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        ncc(np.ones((4, 4)), np.ones((5, 5)))
    mean, se, n = mean_se([0.5, 0.7, None, 0.9])
    assert (mean, n) == (pytest.approx(0.7), 3) and se == pytest.approx(0.2 / np.sqrt(3))
    assert mean_se([None]) == (None, None, 0)


def test_masked_difference_map_and_gradient_saliency():
    a = np.zeros((16, 16), np.float32)
    b = a.copy(); b[2:6, 2:6] = 1.0; b[10:14, 10:14] = 1.0
    region = np.zeros((16, 16)); region[:8, :8] = 1
    m = difference_map(a, b, sigma=0, region=region)
    assert m[2:6, 2:6].min() == 1.0 and not m[10:14, 10:14].any()
    assert np.array_equal(difference_map(a, b, sigma=0), np.abs(b - a))    # unmasked: unchanged signature
    with pytest.raises(ValueError):
        difference_map(a, b, region=region[:8])
    # a linear "classifier" whose logit 1 reads only the top-left block: saliency is exactly there
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2, bias=False))
    with torch.no_grad():
        w = torch.zeros(2, 16, 16); w[1, :4, :4] = 3.0; w[0, 12:, 12:] = -1.0
        net[1].weight.copy_(w.reshape(2, 256))
    sal = gradient_saliency(net, np.zeros((1, 16, 16), np.float32), target=1, sigma=0)
    assert sal.shape == (16, 16) and sal[:4, :4].min() == 3.0 and sal[4:].max() == 0.0
    both = gradient_saliency(net, np.zeros((16, 16), np.float32), target=None, sigma=0)
    assert both[12:, 12:].min() == 1.0


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_va_scores_localise_a_known_lesion_above_the_null_arm(tmp_path):
    """Images with an effusion blob (bit 0 of the mask PNG); the 'counterfactual' removes exactly the blob, the
    null edit adds noise everywhere: the counterfactual map must score AUROC ~1 / NCC high, the null arm ~chance."""
    rng = np.random.default_rng(0)
    rows, cf_rows, null_rows = [], [], []
    for k in range(3):
        img = (rng.random((32, 32)) * 60 + 60).astype(np.uint8)
        bits = np.zeros((32, 32), np.uint8)
        bits[8:16, 4 + k:14 + k] = 1 | 8                 # effusion + consolidation bits on the same pixels
        lesioned = img.copy(); lesioned[bits > 0] = 230
        _png(tmp_path / f"img/{k}.png", lesioned); _png(tmp_path / f"m/{k}.png", bits)
        _png(tmp_path / f"cf/{k}.png", img)
        noisy = np.clip(lesioned + rng.normal(0, 25, (32, 32)), 0, 255).astype(np.uint8)
        _png(tmp_path / f"null/{k}.png", noisy)
        base = {"source_id": f"s{k}", "source_image": f"img/{k}.png", "mask": f"m/{k}.png", "effusion": 1,
                "consolidation": 0, "strength": 0.85, "seed": 0}
        cf_rows.append({**base, "file": f"{k}.png"}); null_rows.append({**base, "file": f"{k}.png"})
    scores = S.va_scores(pd.DataFrame(cf_rows), tmp_path / "cf", pd.DataFrame(null_rows), tmp_path / "null",
                         tmp_path, 32, ["effusion", "consolidation"], sigma=0.5, region=None)
    assert set(scores["finding"]) == {"effusion"}          # consolidation column is 0: not scored
    by_arm = scores.groupby("arm")[["auroc", "ncc"]].mean()
    assert by_arm.loc["counterfactual", "auroc"] > 0.95 and by_arm.loc["counterfactual", "ncc"] > 0.7
    assert abs(by_arm.loc["null edit", "auroc"] - 0.5) < 0.2 and by_arm.loc["null edit", "ncc"] < 0.3
    cells = S.va_cells(scores, {"dataset": "made-up", "scale": "test", "seed": 0})
    cf_auc = [c for c in cells if c["row"] == "effusion: counterfactual (strength 0.85)" and c["column"] == "pixel AUROC"]
    assert len(cf_auc) == 1 and cf_auc[0]["provenance"]["n"] == 3 and cf_auc[0]["std"] is not None
    assert S.lesion_mask(tmp_path / "m/0.png", "consolidation", 16).sum() == 4 * 5   # bit 3, nearest-resized


def test_ms_ssim_scales_fit_the_image():
    from medsynth.metrics.pairs import ms_ssim

    assert S.ms_ssim_scales(512) == 5 and S.ms_ssim_scales(64) == 3 and S.ms_ssim_scales(32) == 2
    x = np.random.default_rng(0).random((32, 32))
    assert ms_ssim(x, x, 1.0, S.ms_ssim_scales(32)) == pytest.approx(1.0)


def test_fid_between_embeds_a_shared_set_once(tmp_path):
    from medsynth.metrics.fid import InceptionEvaluator
    from medsynth.metrics.inception import BackboneInfo

    class _Pool(torch.nn.Module):  # a 4-d feature: the image's mean in each quadrant
        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x[:, :1], 2).flatten(1), None

    rng = np.random.default_rng(0)
    paths = []
    for i in range(9):
        path = tmp_path / f"{i}.png"
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    ev = InceptionEvaluator(model=_Pool(), info=BackboneInfo("stub", "stub.pt", "0" * 64), dims=4)
    seen = []
    real = ev.stats
    ev.stats = lambda batches: seen.append(1) or real(batches)
    healthy, a, b = paths[:5], paths[5:7], paths[7:]
    memo = {}
    fa, fb = S.fid_between(ev, healthy, a, "bicubic16", memo), S.fid_between(ev, healthy, b, "bicubic16", memo)
    assert len(seen) == 3  # healthy once, a, b
    assert fa == pytest.approx(S.fid_between(ev, healthy, a, "bicubic16"))  # no memo: same value


def test_saliency_rows_carry_the_classifiers_heldout_auc_and_its_refusal():
    """The gradient-saliency baseline explains the judge: each of its rows says how well the judge separates the
    finding on its own held-out split, and a label the judge refuses is flagged (kept as a baseline, not dropped)."""
    card = {"labels": ["Pleural Effusion", "Atelectasis"], "auc_floor": 0.9,
            "heldout": {"Pleural Effusion": {"auc": 0.99, "ci": [0.98, 1.0], "positives": 80, "negatives": 160},
                        "Atelectasis": {"auc": 0.7, "ci": [0.6, 0.8], "positives": 30, "negatives": 210}}}
    rows = [{"source_id": "a", "finding": f, "strength": None, "seed": None, "arm": "gradient saliency",
             "auroc": 0.8, "ncc": 0.2, "lesion_fraction": 0.1} for f in ("effusion", "atelectasis")]
    rows.append({"source_id": "a", "finding": "effusion", "strength": 0.8, "seed": 0, "arm": "counterfactual",
                 "auroc": 0.9, "ncc": 0.3, "lesion_fraction": 0.1})
    cells = {(c["row"], c["column"]): c for c in S.va_cells(pd.DataFrame(rows), {"dataset": "d"}, card)}
    eff = cells[("effusion: gradient saliency", "pixel AUROC")]["provenance"]
    assert eff["classifier_heldout_auc"] == 0.99 and "classifier_refused" not in eff
    atel = cells[("atelectasis: gradient saliency", "NCC")]["provenance"]
    assert atel["classifier_heldout_auc"] == 0.7 and "0.7" in atel["classifier_refused"]
    assert "does not separate the finding" in atel["method"]
    assert "classifier_heldout_auc" not in cells[("effusion: counterfactual (strength 0.8)", "NCC")]["provenance"]
