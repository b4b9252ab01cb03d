"""The live index (medsynth.report.progress): status per paper while a run goes on; never replaces the final one."""
from medsynth.report.progress import is_live, paper_status, write_live_index


def test_status_per_paper_follows_the_files(tmp_path):
    cells = {"choksi2025": [str(tmp_path / "eval" / "choksi2025" / "q.json")],
             "xing2024": [str(tmp_path / "eval" / "xing2024" / "t1.json")], "chen2024": []}
    assert paper_status(tmp_path, "xing2024", cells["xing2024"]) == "not started"
    assert paper_status(tmp_path, "chen2024", []) == "not enabled"
    (tmp_path / "logs" / "train_model_stage" / "xing2024_ddpm").mkdir(parents=True)
    (tmp_path / "logs" / "train_model_stage" / "xing2024_ddpm" / "ddpm.log").write_text("")
    assert paper_status(tmp_path, "xing2024", cells["xing2024"]) == "running"
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "choksi2025.html").write_text("<html>")
    assert paper_status(tmp_path, "choksi2025", cells["choksi2025"]) == "done"

    assert write_live_index(tmp_path, cells, "demo")
    index = tmp_path / "report" / "index.html"
    text = index.read_text()
    assert is_live(index) and "<a href='choksi2025.html'>" in text and "status-running'>running" in text
    assert index.stat().st_mtime == 0  # never newer than the pages report_index reads
    index.write_text("<html>final index</html>")
    assert not write_live_index(tmp_path, cells, "demo") and index.read_text() == "<html>final index</html>"
