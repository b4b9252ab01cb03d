"""Demo profile (medsynth.report.profile): benchmark files summed per paper and per rule."""
from medsynth.report.profile import disk_usage, paper_of, read_benchmarks, summarise

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root, rule, wildcards, seconds, rss=100.0):
    path = root / "benchmarks" / rule / f"{wildcards}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0\t{rss}\t0\t0\t0\t0\t0\t50\t{seconds / 2}\n")


def test_jobs_are_attributed_to_papers_by_rule_or_model_and_summed(tmp_path):
    _bench(tmp_path, "train_diffusion", "choksi2025", 120.0, rss=900)
    _bench(tmp_path, "sample_images", "chambon2022_base/examples", 30.0)
    _bench(tmp_path, "chambon2022_vae_metrics", "all", 10.0)
    _bench(tmp_path, "phantom_shard", "00000", 6.0)
    _bench(tmp_path, "phantom_shard", "00001", 4.0)
    (tmp_path / "benchmarks" / "phantom_shard" / "00002.tsv").write_text("")  # a job that died: skipped
    jobs = read_benchmarks(tmp_path)
    assert len(jobs) == 5
    s = summarise(jobs)
    per = {r["paper"]: r for r in s["per_paper"]}
    assert per["chambon2022"]["wall_s"] == 40.0 and per["chambon2022"]["jobs"] == 2
    assert per["choksi2025"]["max_rss_mb"] == 900 and per["shared"]["wall_s"] == 10.0
    assert s["total_job_wall_s"] == 170.0 and s["per_rule"][0]["rule"] == "train_diffusion"


def test_paper_of_and_disk_usage(tmp_path):
    assert paper_of("train_model_stage", "xing2024_ddpm_text/ddpm") == "xing2024"
    assert paper_of("ingest", "phantom_cxr") == "shared"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "w.bin").write_bytes(b"x" * 1000)
    assert disk_usage(tmp_path) == {"models": 1000}
    import os
    os.link(tmp_path / "models" / "w.bin", tmp_path / "models" / "shared.bin")  # an adapted model's shared weights
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "c.npz").write_bytes(b"y" * 10)
    assert disk_usage(tmp_path) == {"cache": 10, "models": 1000}


def test_machine_speed_names_the_cpu_and_times_a_fixed_workload():
    from medsynth.report.profile import machine_speed

    import torch

    before = torch.get_num_threads()
    m = machine_speed(steps=2)
    assert m["torch_conv_s"] > 0 and m["logical_cpus"] >= 1 and m["cpu"]
    assert "2 training steps" in m["torch_conv_workload"]
    assert torch.get_num_threads() == before  # the calibration's single thread is not left behind
