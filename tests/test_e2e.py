"""End to end: the default target on the CI-scale config, run by Snakemake in a scratch working directory."""
import json
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, request):
    from tests.conftest import REPO

    work = tmp_path_factory.mktemp("e2e")
    results = work / "results"
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
        "--configfile", str(REPO / "config.yaml"), str(REPO / "config" / "ci.yaml"),
        "--config", f"results={results}", "--cores", "2", "--quiet", "rules", "all",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((results / "logs").rglob("*.log")))
        pytest.fail(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{logs[-8000:]}")
    return results


def test_every_dataset_accounts_for_its_inputs(ci_run):
    for summary_path in (ci_run / "data").glob("*/summary.json"):
        s = json.loads(summary_path.read_text())
        assert s["inputs"] == s["outputs"] + s["rejects"], summary_path
        assert s["outputs"] > 0, summary_path


def test_phantom_images_are_processed(ci_run):
    m = pd.read_parquet(ci_run / "data" / "phantom_cxr" / "manifest.parquet")
    assert len(m) > 0
    assert set(m["split"]) <= {"train", "val", "test"}
    for rel in m["image"].head(3):
        assert (ci_run / rel).is_file()
    # every job left a log and a benchmark
    assert list((ci_run / "logs" / "preprocess_shard").rglob("*.log"))
    assert list((ci_run / "benchmarks" / "preprocess_shard").rglob("*.tsv"))


def test_no_phi_anywhere_in_outputs(ci_run):
    """The phantom DICOMs carry fake PHI in their headers; none of it may reach processed outputs or logs."""
    import pydicom

    raw = sorted((ci_run / "raw" / "phantom").rglob("*.dcm"))
    assert raw, "phantom cohort wrote no DICOMs"
    ds = pydicom.dcmread(raw[0], stop_before_pixels=True)
    planted = [str(ds.PatientName), str(ds.PatientID)]
    planted = [p for p in planted if len(p) >= 4]
    assert planted
    scanned = 0
    for path in ci_run.rglob("*"):
        if not path.is_file() or "raw" in path.relative_to(ci_run).parts or path.suffix == ".dcm":
            continue
        blob = path.read_bytes()
        if path.suffix == ".parquet":
            blob = pd.read_parquet(path).to_csv().encode()
        for p in planted:
            assert p.encode() not in blob, f"PHI {p!r} found in {path}"
            assert p not in path.name
        scanned += 1
    assert scanned > 10
