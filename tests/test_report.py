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


def _fid_record(backbone, value=40.0):
    from medsynth.metrics.provenance import MetricRecord

    return MetricRecord(metric="fid", value=value, n=24, backbone=backbone, weights_sha256="c0ffee" * 10 + "abcd",
                        resize_mode="bicubic64+bilinear-299-in-model", seed=0, definition="Frechet distance",
                        extra={"n_reference": 30, "weights": "w.safetensors", "stand_in": backbone.endswith("random")}
                        ).to_dict()


def test_stand_in_cells_are_labelled_and_get_no_difference():
    from medsynth.report.cells import cell_from_record

    stand = cell_from_record("choksi2025", "quality", "ours (stand-in)", "FID", _fid_record("inception-random"),
                             dataset="phantom_cxr", scale="demo", split="val+test")
    real = cell_from_record("choksi2025", "quality", "ours (real)", "FID", _fid_record("inception-fid", 30.0),
                            dataset="phantom_cxr", scale="demo")
    assert stand["provenance"]["stand_in"] is True and real["provenance"]["stand_in"] is False
    assert stand["provenance"]["n"] == 24 and stand["provenance"]["n_reference"] == 30
    assert stand["provenance"]["weights_sha256"].startswith("c0ffee") and stand["provenance"]["split"] == "val+test"
    tables = side_by_side("choksi2025", [stand, real])
    quality = next(t for t in tables if t.id == "quality")
    assert quality.rows["ours (stand-in)"][5].stand_in == "inception-random"
    md = to_markdown("choksi2025", tables, "demo", "config.yaml")
    assert "40† [1] / — " in md and "(Δ not comparable: stand-in inception-random)" not in md  # nothing published
    assert "30 [2] / —" in md
    assert "1 measured cell(s) marked † were computed with a STAND-IN" in md
    assert "Measured on: phantom_cxr [val+test] (N = 24 per cell), phantom_cxr (N = 24 per cell)." in md
    assert "† inception-random: pytorch-fid's InceptionV3 architecture with seeded random weights" in md
    # provenance footnote: backbone and weights first, hash shortened, stand-in spelled out
    assert "[1] backbone: inception-random; stand_in: YES (labelled stand-in" in md
    assert "weights_sha256: c0ffeec0ffee…; dataset: phantom_cxr; split: val+test; n: 24; n_reference: 30" in md
    html = to_html("choksi2025", tables, "demo", "config.yaml")
    assert "class=standin" in html and "STAND-IN" in html
    # in a row the paper publishes, a stand-in gets no Δ, a real backbone does
    pub_stand = cell_from_record("choksi2025", "quality", "Published model", "FID", _fid_record("inception-random"),
                                 dataset="d", scale="demo")
    md2 = to_markdown("choksi2025", side_by_side("choksi2025", [pub_stand]), "demo", "c")
    assert "40† [1] / 32.6 (Δ not comparable: stand-in inception-random)" in md2
    pub_real = cell_from_record("choksi2025", "quality", "Published model", "FID", _fid_record("inception-fid"),
                                dataset="d", scale="demo")
    assert "40 [1] / 32.6 (Δ +7.4)" in to_markdown("choksi2025", side_by_side("choksi2025", [pub_real]), "demo", "c")


def test_backbone_cells_need_weights_hash_and_index_counts_stand_ins(tmp_path):
    import json

    from medsynth.report.cells import cell_from_record
    from medsynth.report.index import build_index

    with pytest.raises(ValueError, match="weights_sha256"):
        make_cell("xing2024", "table1", "Pix2pix", "FID", 1.0,
                  provenance={"dataset": "x", "n": 1, "method": "m", "backbone": "inception-fid"})
    with pytest.raises(ValueError, match="paper-scale number computed with the random stand-in"):
        cell_from_record("xing2024", "table1", "medsynth", "FID", _fid_record("inception-random"), dataset="x",
                         scale="paper")
    kid = cell_from_record("xing2024", "table1", "medsynth", "KID", {**_fid_record("inception-random"),
                                                                      "metric": "kid", "value": 0.01, "std": 0.002},
                           dataset="phantom_ct", scale="demo", factor=1.0)
    assert kid["std"] == pytest.approx(0.002)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"dataset": "phantom_ct", "inputs": 3, "output_rows": 3, "rejects": 0}))
    md, html = build_index({"xing2024": [kid], "choksi2025": []}, [summary], "demo", ["config.yaml"])
    from medsynth.report.index import paper_coverage

    measured, published = paper_coverage("xing2024", [kid])
    assert f"| xing2024 | {measured} / {published} | 1 | [xing2024.html](xing2024.html) |" in md
    assert "| choksi2025 | 0 / " in md and "stand-in cells (†)" in md and "not comparable" in md
    assert "<th>stand-in cells (†)</th>" in html


def test_measured_row_compares_with_the_row_it_reproduces():
    prov = {"dataset": "phantom_cxr", "n": 24, "method": "mean SSIM over pairs", "scale": "demo"}
    ssim = make_cell("choksi2025", "quality", "medsynth (measured)", "SSIM", 0.5, provenance=prov,
                     reproduces="Published model")
    tables = side_by_side("choksi2025", [ssim])
    md = to_markdown("choksi2025", tables, "demo", "c")
    assert "| medsynth (measured) | 0.5 [1] / 0.82 (Δ -0.32) |" in md
    assert "| Published model | — / 0.82 |" in md
    assert "Row 'medsynth (measured)' shows the published values of row 'Published model'" in md
    with pytest.raises(ValueError, match="lacks"):
        side_by_side("choksi2025", [make_cell("choksi2025", "quality", "x", "SSIM", 0.5, provenance=prov,
                                              reproduces="Their model")])


def test_published_numbers_print_as_transcribed_not_rounded():
    from medsynth.report.render import _fmt_published
    assert _fmt_published(221.99) == "221.99"       # 4 significant digits would print 222
    assert _fmt_published(0.12345678) == "0.12345678"
    assert _fmt_published(60) == "60" and _fmt_published(54.0) == "54"
    assert _fmt_published(None) == "—" and _fmt_published(float("nan")) == "—"


def test_finding_auc_figure_draws_each_set_with_its_interval_and_positives():
    from medsynth.report.auc_figure import finding_auc_figure

    gen = {"Cardiomegaly": {"auc": 0.8, "auc_ci": [0.6, 0.95], "positives": 5},
           "Pneumothorax": {"auc": None, "positives": 0}}
    real = {"Cardiomegaly": {"auc": 0.99, "positives": 5}, "Pneumothorax": {"auc": 0.9, "ci": [0.8, 1.0],
                                                                           "positives": 3}}
    fig = finding_auc_figure([("real", real), ("generated", gen)], ["Cardiomegaly", "Pneumothorax"], "t")
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == [0.0, 0.8, 0.9, 0.99]                       # an undefined AUC draws an empty bar
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Cardiomegaly\n(+5/5)", "Pneumothorax\n(+3/0)"]
    caps = [c for c in ax.containers if getattr(c, "errorbar", None) is not None]
    segs = [seg for c in caps for seg in c.errorbar.lines[2][0].get_segments()]
    spans = sorted((round(s[0][1], 3), round(s[1][1], 3)) for s in segs)
    assert (0.6, 0.95) in spans and (0.8, 1.0) in spans           # both interval keys are drawn
