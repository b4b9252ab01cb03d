"""Step (chen2024 Module 1): (anatomy, pathology) word pairs drawn from the vocabularies, written into positive
findings by the configured LLM (or the deterministic template writer); the prompts, seed and LLM hash are kept."""
import torch

from medsynth.anatomy_pathology import word_pairs, write_prompts
from medsynth.io import read_table, write_json, write_table
from medsynth.workflow import script_logging

log = script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
spec, seed = snakemake.params.spec, snakemake.params.seed
pairs = word_pairs(read_table(snakemake.input.vocabulary), int(spec.get("n", 4)), int(spec.get("anatomy_words", 2)),
                   int(spec.get("pathology_words", 2)), seed=seed)
writer, llm, info = spec.get("writer", "llm"), None, None
if writer == "llm":
    from medsynth.models.llm import load_causal_lm

    model, tokenizer, info = load_causal_lm(spec["llm"], seed=seed)
    llm = (model, tokenizer)
prompts = write_prompts(pairs, writer, llm, int(spec.get("max_new_tokens", 60)), int(spec.get("words", 50)))
n = int(spec.get("n_per_prompt", 1))
prompts = prompts.assign(prompt_id=range(len(prompts)))
rows = prompts.loc[prompts.index.repeat(n)].reset_index(drop=True)
rows["seed"] = [int(spec.get("seed", 0)) + k for k in range(n)] * len(prompts)
write_table(rows, snakemake.output.table)
write_json({"writer": writer, "llm": info, "seed": seed, "n_prompts": len(prompts), "decoding": "greedy",
            "uses_all_words": int(prompts["uses_all_words"].sum()), "prompts": prompts.to_dict("records")},
           snakemake.output.record)
log.info("%d prompts by %s; %d use all their words", len(prompts), writer, int(prompts["uses_all_words"].sum()))
