"""Report tables: published numbers transcribed correctly, measured cells placed in the paper's layout."""
import pytest

from medsynth.report.cells import make_cell
from medsynth.report.published import load_published, papers
from medsynth.report.render import side_by_side, to_html, to_markdown


def test_every_paper_has_published_tables():
    assert set(papers()) == {"chambon2022", "chen2024", "choksi2025", "siddiqui2023", "xing2024"}
    xing = load_published("xing2024")["tables"][0]
    assert xing["rows"]["Pix2pix + Text Encoder"] == [113.097, 0.077, 3.552]
    table3 = next(t for t in load_published("chambon2022")["tables"] if t["id"] == "table3")
    assert table3["rows"]["Macro"][6] == 61.1  # CXR-BERT-specialized macro


def test_measured_cell_sits_beside_published_with_difference_and_provenance():
    prov = {"dataset": "openi_reports (3955 reports)", "n": 3955, "method": "MiniLM mean pooling", "scale": "demo"}
    cells = [
        make_cell("chambon2022", "table2", "RadBERT", "CLS", 50.2, provenance=prov),
        make_cell("chambon2022", "table2", "MiniLM (offline)", "mean", 40.0, std=1.5, provenance=prov),
    ]
    tables = {t.id: t for t in side_by_side("chambon2022", cells)}
    radbert = tables["table2"].rows["RadBERT"][0]
    assert radbert.published == 54.2 and radbert.measured == 50.2 and radbert.note == 1
    assert "MiniLM (offline)" in tables["table2"].rows  # a row the paper lacks is appended
    md = to_markdown("chambon2022", list(tables.values()), "demo", "config.yaml")
    assert "50.2 [1] / 54.2 (Δ -4)" in md
    assert "NOT a reproduction" in md
    assert "[1] dataset: openi_reports" in md
    assert "<table>" in to_html("chambon2022", list(tables.values()), "demo", "config.yaml")


def test_unknown_column_and_missing_provenance_are_errors():
    with pytest.raises(ValueError, match="provenance lacks"):
        make_cell("xing2024", "table1", "Pix2pix", "FID", 1.0, provenance={"dataset": "x"})
    bad = make_cell("xing2024", "table1", "Pix2pix", "FVD", 1.0, provenance={"dataset": "x", "n": 1, "method": "m"})
    with pytest.raises(ValueError, match="not in the paper's table"):
        side_by_side("xing2024", [bad])
