"""Reference statistics made by pytorch-fid (keys mu and sigma only, no metadata): refused unless the config declares
their provenance; accepted on a declaration whose backbone/dims/resize match, recorded as user-declared."""
import hashlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medsynth.errors import MedsynthError
from medsynth.metrics import generative as G
from medsynth.metrics.fid import InceptionEvaluator

torch.set_num_threads(1)


def _pngs(folder, seed, n, size=24):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((size, size)) * 200).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return sorted(folder.glob("*.png"))


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    return InceptionEvaluator.create(backbone="inception-random", dims=64, seed=0,
                                     cache_dir=tmp_path_factory.mktemp("decl_cache"), is_splits=2)


@pytest.fixture(scope="module")
def files(ev, tmp_path_factory):
    root = tmp_path_factory.mktemp("decl")
    real, gen = _pngs(root / "real", 1, 8), _pngs(root / "gen", 2, 6)
    ours = G.compute_reference(ev, real, root / "ours.npz", "phantom_cxr", "test")
    np.savez_compressed(root / "pytorch_fid.npz", mu=ours.mu, sigma=ours.sigma)  # what `--save-stats` writes
    return {"root": root, "gen": gen, "ours": root / "ours.npz", "pfid": root / "pytorch_fid.npz"}


def _decl(path, **kw):
    return {"dataset": "phantom_cxr", "split": "test", "file": str(path), "backbone": "inception-random", "dims": 64,
            "resize": "native", "declared_by_user": True, **kw}


def test_undeclared_pytorch_fid_file_is_refused_with_how_to_declare(ev, files):
    with pytest.raises(MedsynthError, match="carry no metadata") as err:
        G.evaluate_generated(ev, files["pfid"], files["gen"], kid_subsets=2)
    assert "declared_by_user: true" in str(err.value) and "metrics: {reference_stats" in str(err.value)


def test_declared_file_is_used_and_recorded_as_user_declared(ev, files):
    ours = G.evaluate_generated(ev, files["ours"], files["gen"], kid_subsets=2)
    recs = G.evaluate_generated(ev, files["pfid"], files["gen"], kid_subsets=2, declared=_decl(files["pfid"]))
    assert recs["fid"]["value"] == pytest.approx(ours["fid"]["value"], rel=1e-9)
    ref = recs["fid"]["extra"]["reference"]
    assert ref["declared_by_user"] is True and ref["file"] == "pytorch_fid.npz" and ref["n"] is None
    assert ref["file_sha256"] == hashlib.sha256(files["pfid"].read_bytes()).hexdigest()
    assert ref["dataset"] == "phantom_cxr" and ref["split"] == "test" and ref["weights_sha256"] is None
    assert "kid" not in recs and "mu/sigma" in recs["fid"]["extra"]["kid"]  # no features -> no KID, said why
    assert recs["fid"]["backbone"] == "inception-random" and recs["fid"]["extra"]["stand_in"] is True
    # our own cache ignores a declaration's claims and is checked against its own metadata
    same = G.evaluate_generated(ev, files["ours"], files["gen"], kid_subsets=2, declared=_decl(files["ours"]))
    assert same["fid"]["value"] == ours["fid"]["value"] and "kid" in same


def test_declaration_must_match_the_evaluation_and_the_file(ev, files):
    with pytest.raises(MedsynthError, match="'dims': \\(2048, 64\\)"):
        G.evaluate_generated(ev, files["pfid"], files["gen"], declared=_decl(files["pfid"], dims=2048))
    with pytest.raises(MedsynthError, match="'resize': \\('bicubic64', 'native'\\)"):
        G.evaluate_generated(ev, files["pfid"], files["gen"], declared=_decl(files["pfid"], resize="bicubic64"))
    with pytest.raises(MedsynthError, match="declared weights_sha256"):
        G.evaluate_generated(ev, files["pfid"], files["gen"], declared=_decl(files["pfid"], weights_sha256="0" * 64))
    wrong = files["root"] / "dims192.npz"
    np.savez(wrong, mu=np.zeros(192), sigma=np.eye(192))
    with pytest.raises(MedsynthError, match="declared dims 64 but mu has shape \\(192,\\)"):
        G.evaluate_generated(ev, wrong, files["gen"], declared=_decl(wrong))
    asym = files["root"] / "asym.npz"
    np.savez(asym, mu=np.zeros(64), sigma=np.triu(np.ones((64, 64))))
    with pytest.raises(MedsynthError, match="symmetric covariance"):
        G.evaluate_generated(ev, asym, files["gen"], declared=_decl(asym))


def test_config_declarations_pick_the_file_at_dag_time(files, tmp_path):
    config = {"metrics": {"reference_stats": [_decl(files["pfid"])]}}
    args = ("phantom_cxr", "test", "inception-random", "native")
    assert G.declared_reference(config, *args)["file"] == str(files["pfid"])
    assert G.reference_input(config, "res", *args) == str(files["pfid"])
    other = ("phantom_cxr", "val", "inception-random", "native")
    assert G.declared_reference(config, *other) is None
    cached = "res/cache/metrics/reference/phantom_cxr/val/inception-random__native.npz"
    assert G.reference_input(config, "res", *other) == cached
    loose = {"metrics": {"reference_stats": [_decl(files["pfid"], declared_by_user=False)]}}
    with pytest.raises(MedsynthError, match="reference_stats.0'.*declared_by_user: true"):
        G.declared_reference(loose, *args)
    gone = {"metrics": {"reference_stats": [_decl(tmp_path / "absent.npz")]}}
    with pytest.raises(MedsynthError, match="reference_stats.0'.file"):
        G.declared_reference(gone, *args)


def test_schema_requires_the_explicit_declaration(files, repo):
    import yaml

    from medsynth import workflow as wf

    base = yaml.safe_load((repo / "config.yaml").read_text())
    decl = _decl(files["pfid"])
    ok = {**base, "metrics": {"reference_stats": [decl]}}
    wf.validate_config(ok, repo / "schemas" / "config.schema.yaml")
    bad = {**base, "metrics": {"reference_stats": [{k: v for k, v in decl.items() if k != "declared_by_user"}]}}
    with pytest.raises(MedsynthError, match="metrics.reference_stats.0.*declared_by_user"):
        wf.validate_config(bad, repo / "schemas" / "config.schema.yaml")


def test_declared_reference_replaces_the_reference_stats_job(files, tmp_path):
    """Dry run: with a declaration, generative_metrics reads the declared file and no reference_stats job is planned."""
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO

    data = tmp_path / "results" / "data" / "phantom_cxr"
    data.mkdir(parents=True)
    pd.DataFrame({"id": ["0"], "image": ["x.png"], "split": ["test"]}).to_parquet(data / "manifest.parquet")
    samples = tmp_path / "results" / "samples" / "choksi2025" / "reports"
    samples.mkdir(parents=True)
    pd.DataFrame({"file": ["0.png"], "split": ["test"]}).to_csv(samples / "samples.csv", index=False)
    extra = tmp_path / "declare.yaml"
    extra.write_text(yaml.safe_dump({"metrics": {"reference_stats": [_decl(files["pfid"], dims=2048)]}}))
    target = "results/eval/generative/choksi2025/reports/test/test/inception-random__native.json"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(REPO / "config.yaml"), str(extra), "--cores", "1", "-n", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "generative_metrics" in out and "reference_stats" not in out
