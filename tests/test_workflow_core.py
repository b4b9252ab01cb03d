"""Core workflow mechanics: config validation, shard arithmetic, accounting, pseudonyms, atomic writes."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medsynth import workflow as wf
from medsynth.errors import MedsynthError
from medsynth.ids import pseudonym, resolve_key
from medsynth.io import atomic_path, read_table, write_table
from medsynth.manifest import finalize, patient_split
from medsynth.sharding import AccountingError, merge_shards

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def base_config(tmp_path):
    return {"results": str(tmp_path / "results"), "datasets": {"r": {"adapter": "openi_reports"}}}


def test_schema_fills_defaults(tmp_path):
    cfg = base_config(tmp_path)
    wf.validate_config(cfg, SCHEMA)
    assert cfg["seed"] == 0
    assert cfg["datasets"]["r"]["shard_size"] == 1000


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"seeed": 1}, "(top level)"),
        ({"phantom": {"n_patients": "many"}}, "phantom.n_patients"),
        ({"datasets": {"r": {"adapter": "nope"}}}, "datasets.r.adapter"),
        ({"datasets": {"r": {"adapter": "openi_reports", "shard_size": 0}}}, "datasets.r.shard_size"),
        ({"split": {"fractions": {"train": 0.5, "val": 0.1, "test": 0.1}}}, "split.fractions"),
        ({"classifier": {"datasets": ["absent"]}}, "classifier.datasets"),
    ],
)
def test_bad_config_names_the_key(tmp_path, patch, key):
    cfg = base_config(tmp_path)
    cfg.update(patch)
    with pytest.raises(MedsynthError) as err:
        wf.validate_config(cfg, SCHEMA)
    assert key in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_dataset_root_is_one_line(tmp_path):
    cfg = base_config(tmp_path)
    cfg["datasets"]["m"] = {"adapter": "mimic_cxr", "root": str(tmp_path / "absent")}
    with pytest.raises(MedsynthError, match="dataset 'm' missing"):
        wf.validate_config(cfg, SCHEMA)


def test_snakemake_reports_config_error_without_traceback(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  x:\n    adapter: openi_reports\n    shard_size: -3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad)],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config error at 'datasets.x.shard_size'" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("n, size, shards", [(1, 10, 1), (10, 10, 1), (11, 10, 2), (377_110, 1000, 378), (0, 5, 1)])
def test_shard_ids(n, size, shards):
    ids = wf.shard_ids(n, size)
    assert len(ids) == shards
    covered = sum(len(range(n)[wf.shard_slice(s, size)]) for s in ids)
    assert covered == n


def test_patient_split_keeps_patients_together():
    key = b"k"
    patients = pd.Series([f"p{i // 3}" for i in range(3000)])
    split = patient_split(patients, {"train": 0.8, "val": 0.1, "test": 0.1}, key, "ds")
    per_patient = pd.DataFrame({"p": patients, "s": split}).groupby("p")["s"].nunique()
    assert (per_patient == 1).all()
    frac = split.value_counts(normalize=True)
    assert abs(frac["train"] - 0.8) < 0.06 and abs(frac["test"] - 0.1) < 0.04
    # stable under reordering
    again = patient_split(patients[::-1], {"train": 0.8, "val": 0.1, "test": 0.1}, key, "ds")
    assert (again[::-1].to_numpy() == split.to_numpy()).all()


@pytest.mark.parametrize("n", [3, 5, 12, 20])
def test_patient_split_small_cohort_fills_every_split(n):
    fr = {"train": 0.8, "val": 0.1, "test": 0.1}
    for key in (b"a", b"b", b"c", b"d"):
        patients = pd.Series([f"p{i}" for i in range(n)] * 2)
        split = patient_split(patients, fr, key, "ds")
        assert set(split) == {"train", "val", "test"}, (n, key, split.value_counts().to_dict())
        assert (split.value_counts()["train"] >= split.value_counts()[["val", "test"]]).all()
        pd.testing.assert_series_equal(split, patient_split(patients, fr, key, "ds"))
    assert set(patient_split(pd.Series(["a", "b"]), fr, b"k", "ds")) <= {"train", "val", "test"}
    assert set(patient_split(pd.Series([f"p{i}" for i in range(9)]), {"train": 1.0}, b"k", "ds")) == {"train"}


def test_pseudonym_is_keyed_and_stable(monkeypatch):
    assert pseudonym(b"a", "ns", "p1") == pseudonym(b"a", "ns", "p1")
    assert pseudonym(b"a", "ns", "p1") != pseudonym(b"b", "ns", "p1")
    assert "p1" not in pseudonym(b"a", "ns", "p1")
    monkeypatch.setenv("MY_KEY", "secret")
    assert resolve_key({"key_env": "MY_KEY", "key": "demo"}) == b"secret"
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(MedsynthError):
        resolve_key({"key_env": "MY_KEY"})


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def _shard(tmp_path, name, out_ids, rej_ids):
    d = tmp_path / name
    d.mkdir()
    write_table(pd.DataFrame({"id": out_ids, "split": ["train"] * len(out_ids),
                              "source": [f"/data/p10/{i}.jpg" for i in out_ids]}), d / "manifest.parquet")
    write_table(pd.DataFrame({"id": rej_ids, "source": ["x"] * len(rej_ids), "reason": ["truncated"] * len(rej_ids),
                              "detail": [""] * len(rej_ids)}), d / "rejects.csv")
    return d


def test_merge_accounts_every_input(tmp_path):
    raw = finalize(pd.DataFrame({"id": ["a", "b", "c", "d"], "patient_id": "p", "split": "train"}))
    shards = [_shard(tmp_path, "s0", ["a", "b"], []), _shard(tmp_path, "s1", ["c"], ["d"])]
    out, rej, summary = merge_shards(raw, shards)
    assert "source" not in out and "source" not in rej  # shareable tables: pseudonymous ids, no source paths
    assert summary["inputs"] == 4 and summary["outputs"] == 3 and summary["rejects"] == 1
    assert summary["reject_reasons"] == {"truncated": 1}
    lost = [_shard(tmp_path, "t0", ["a"], []), _shard(tmp_path, "t1", ["c"], ["d"])]
    with pytest.raises(AccountingError, match="1 missing"):
        merge_shards(raw, lost)


def test_tables_roundtrip(tmp_path):
    df = pd.DataFrame({"id": ["x"], "findings": [""]})
    for suffix in (".parquet", ".csv"):
        write_table(df, tmp_path / f"t{suffix}")
        assert read_table(tmp_path / f"t{suffix}")["id"].tolist() == ["x"]


def test_snakemake_lint_is_clean(repo):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--cores", "1"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_training_caches_go_after_a_run_only_when_the_config_drops_caches(tmp_path):
    cfg = base_config(tmp_path)
    wf.validate_config(cfg, SCHEMA)
    assert cfg["keep_caches"] is None and cfg["scale"] == "demo" and not wf.keeps_caches(cfg)
    assert wf.keeps_caches({**cfg, "scale": "paper"})  # real runs keep what a later run would reuse
    assert not wf.keeps_caches({**cfg, "scale": "paper", "keep_caches": False})
    from medsynth.training import training_cache_dir
    folder = training_cache_dir(cfg["results"])
    folder.mkdir(parents=True)
    (folder / "latents-x.safetensors").write_bytes(b"\0" * 2_000_000)
    assert wf.drop_training_caches({**cfg, "scale": "paper"}) is None and folder.is_dir()
    assert wf.drop_training_caches({**cfg, "keep_caches": True}) is None and folder.is_dir()
    msg = wf.drop_training_caches(cfg)
    assert not folder.exists() and "2 MB" in msg
    assert wf.drop_training_caches({**cfg, "keep_caches": False}) is None  # nothing left: nothing to say
