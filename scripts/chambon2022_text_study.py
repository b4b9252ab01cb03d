"""Step: chambon2022 Study 2 (text encoders), one of: select reports | embed + score one encoder | score the
baselines | assemble Table 2/3 cells. The logic lives in medsynth.papers.chambon2022_text."""
import json

from medsynth.io import atomic_path, read_table, write_json, write_table
from medsynth.papers import chambon2022_text as T
from medsynth.workflow import script_logging

log = script_logging(snakemake)
p = snakemake.params
study, step = p.study, p.step


def record(result, provenance, method, selection):
    return T.result_record(result, provenance, method=method, dataset=study["dataset"],
                           label_rule=study["label_rule"], seed=p.seed, scale=p.scale, summary=selection)


if step == "select":
    reports, summary = T.select_reports(read_table(snakemake.input.manifest), study["section"],
                                        study["per_class"], p.seed)
    summary["dataset"] = study["dataset"]
    write_table(reports, snakemake.output.reports)
    write_json(summary, snakemake.output.summary)
    log.info("selected %d reports (%d empty %s, %d duplicate, %d without a positive label excluded): %s",
             summary["selected"], summary["excluded_empty_section"], study["section"],
             summary["excluded_duplicate_text"], summary["excluded_no_positive_label"], summary["selected_per_class"])
elif step in ("encoder", "baselines"):
    from medsynth.metrics.retrieval import cosine_matrix

    reports = read_table(snakemake.input.reports)
    selection = json.loads(open(snakemake.input.summary).read())
    texts = list(reports.text)
    records = []
    if step == "encoder":
        import numpy as np
        import torch

        torch.set_num_threads(snakemake.threads)
        entry = T.encoder_entries(study)[snakemake.wildcards.encoder]
        vectors, prov = T.embed_all(entry, texts, study["max_length"], study["batch_size"], p.seed)
        for ext, vec in vectors.items():
            res = T.score(cosine_matrix(vec), reports, study["k"], study["label_rule"])
            records.append(record(res, {**prov, "extraction": ext}, f"{entry['name']} [{ext}], cosine", selection))
            log.info("%s [%s]: macro CheXpert@%d = %.3f", entry["name"], ext, study["k"], res["macro"])
        with atomic_path(snakemake.output.embeddings) as tmp:
            with open(tmp, "wb") as fh:  # plain arrays, read back with allow_pickle=False
                np.savez(fh, **vectors)
    else:
        for name in study["baselines"]:
            res = T.score(T.baseline_similarity(name, texts), reports, study["k"], study["label_rule"])
            records.append(record(res, {"model": name, "baseline": name}, T.BASELINES[name], selection))
            log.info("%s: macro CheXpert@%d = %.3f", name, study["k"], res["macro"])
    write_json([r.to_dict() for r in records], snakemake.output.results)
elif step == "tables":
    from medsynth.metrics.provenance import MetricRecord
    from medsynth.report.published import load_published

    records = [MetricRecord(**d) for path in snakemake.input.results for d in json.loads(open(path).read())]
    table3 = next(t for t in load_published(T.PAPER)["tables"] if t["id"] == "table3")
    cells = T.table_cells(records, table3["columns"])
    write_json(cells, snakemake.output.cells)
    frame = T.per_class_frame(records)
    write_table(frame.round(4).reset_index(names="class"), snakemake.output.per_class)
    T.plot_per_class(frame, f"CheXpert@{study['k']} (%) per class, every encoder at its best extraction "
                            f"({study['dataset']} {study['section']}, n={records[0].n})", snakemake.output.figure)
    log.info("%d cells from %d results", len(cells), len(records))
else:
    raise ValueError(f"unknown step {step!r}")
