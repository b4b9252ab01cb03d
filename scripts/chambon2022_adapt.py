"""Step of chambon2022 Studies 3-6 (medsynth.papers.chambon2022_adapt), by params.step:
reference: real images of one class -> Frechet reference statistics in one feature space (fid | domain);
evaluate: one strategy's samples -> FID + domain distance per named prompt, Table 5 metrics, its sample grid;
tables: every strategy's record -> the report cells of Tables 4 and 5 and the qualitative findings."""
from pathlib import Path

import torch

from medsynth.io import read_json, read_table, write_json
from medsynth.metrics import generative as mg
from medsynth.papers import chambon2022_adapt as C
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
study = p.study


def evaluator(space, weights=None, card=None):
    backbone = study["fid"]["backbone"] if space == "fid" else study["domain"]["backbone"]
    settings = {**p.settings, "dims": study["fid"].get("dims", 2048)} if space == "fid" else p.settings
    return mg.rule_evaluator(backbone, p.resize, settings, p.seed, p.cache, weights=weights, card=card)


if p.step == "reference":
    space, klass = snakemake.wildcards.space, snakemake.wildcards.klass
    label = study["negative_label"] if klass == "negative" else study["positive_label"]
    rows = C.class_rows(read_table(snakemake.input.manifest), label, p.splits)
    inputs = snakemake.input
    ev = evaluator(space, inputs.get("weights"), inputs.get("card"))
    mg.compute_reference(ev, [Path(p.results) / f for f in rows["image"]], snakemake.output[0],
                         f"{study['dataset']}:{label}", "+".join(p.splits))
    log.info("%s reference of %d real '%s' images (%s)", space, len(rows), label, ev.info.backbone)

elif p.step == "evaluate":
    inputs = snakemake.input
    evs = {"fid": evaluator("fid", inputs.get("fid_weights")),
           "domain": evaluator("domain", inputs.get("domain_weights"), inputs.get("domain_card"))}
    record = {"model": snakemake.wildcards.model, "sets": {}, "table5": None}
    samples, folder = read_table(inputs.samples), Path(inputs.samples).parent
    files = {name: [folder / f for f in samples.loc[samples["prompt_name"] == name, "file"]] for name in p.prompts}
    grid = {}
    for name in p.prompts:
        table = samples[samples["prompt_name"] == name]
        paths = files[name]
        klass = C.PROMPTS[name][1]
        rec = {"prompt": str(table["prompt"].iloc[0]), "n": len(paths),
               "reference": study["negative_label"] if klass == "negative" else study["positive_label"]}
        for space, ev in evs.items():
            out = mg.evaluate_generated(ev, inputs[f"ref_{space}_{klass}"], paths, kid_subsets=10)
            rec[space] = out["fid"]
        record["sets"][name] = rec
        record["sampling"] = {"ddim_steps": int(table["steps"].iloc[0]),
                              "guidance_scale": float(table["guidance_scale"].iloc[0])}
        grid[rec["prompt"]] = paths[:p.grid]
        log.info("%s: FID %.4g, domain FD %.4g (%d samples vs %s)", name, rec["fid"]["value"],
                 rec["domain"]["value"], len(paths), rec["reference"])
    # Table 5: the scorer's positive-label probability on the negative- and effusion-prompt samples.
    label = study["positive_label"]
    scores = {}
    if study.get("scorer", "classifier") == "xrv-densenet121":
        from medsynth.classifier.data import image_batch
        from medsynth.classifier.xrv import load_xrv_densenet, xrv_predict

        model, sha = load_xrv_densenet(Path(inputs.scorer_weights))
        for name in C.REQUIRED_PROMPTS:
            scores[name] = xrv_predict(model, image_batch(files[name], 224), [label])[:, 0]
        record["scorer"] = {"name": "torchxrayvision DenseNet-121", "backbone": "xrv-densenet121",
                            "weights_sha256": sha, "label": label}
    else:  # the judge (medsynth.classifier.judge): its own threshold for the label, refused below its AUC floor
        from medsynth.classifier.data import image_batch
        from medsynth.classifier.judge import heldout_table, heldout_text, load_judge

        scorer = load_judge(Path(inputs.scorer_weights), Path(inputs.scorer_card), labels=[label])
        for name in C.REQUIRED_PROMPTS:
            scores[name] = scorer.predict(image_batch(files[name], scorer.image_size))[:, 0]
        card = scorer.card
        record["scorer"] = {"name": f"the project's {card['arch']} classifier, the judge (STAND-IN for "
                                    f"torchxrayvision DenseNet-121; trained on {card.get('trained_on', '?')})",
                            "backbone": scorer.backbone, "weights_sha256": scorer.weights_sha256, "label": label,
                            "judge_heldout_auc": heldout_text(heldout_table(card)[label])
                            if label in heldout_table(card) else None,
                            "refused": scorer.refusals([label]).get(label)}
        study = {**study, "threshold": scorer.thresholds([label], study.get("threshold", 0.5))[label]}
    record["table5"] = C.table5_metrics(scores["negative"], scores["effusion"], study.get("threshold", 0.5),
                                        refused=record["scorer"].get("refused"))
    write_json(record, snakemake.output.record)
    C.sample_grid(snakemake.output.figure, grid, f"{snakemake.wildcards.model} ({p.scale} scale)")
    log.info("Table 5: %s", {k: record["table5"].get(k) for k in C.TABLE5_COLUMNS})

elif p.step == "tables":
    active, omitted = C.study_strategies(study, p.models)
    evals = {e["model"]: read_json(f) for e, f in zip(active, snakemake.input.records)}
    cells = C.table_cells(evals, active, omitted, dataset=study["dataset"], scale=p.scale)
    write_json(cells, snakemake.output.cells)
    found = C.findings(evals, active)
    found["omitted"] = {e["model"]: e["omitted"] for e in omitted}
    write_json(found, snakemake.output.findings)
    log.info("%d cells; findings %s", len(cells), found)
