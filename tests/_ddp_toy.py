"""Toy run of the training engine for the multi-process test: `python -m torch.distributed.run --nproc_per_node 2
tests/_ddp_toy.py OUT BATCH`, or `main(out, batch)` in one process. Linear regression on fixed data, no randomness in
the loss, so DDP's averaged gradient over two half batches equals one process's gradient over the whole batch."""
import json
import sys
from pathlib import Path

import torch

from medsynth.training.loop import TrainConfig, batch_indices, make_accelerator, run_training


def main(out: Path, batch: int, accumulation: int = 1) -> None:
    cfg = TrainConfig(max_steps=4, batch_size=batch, learning_rate=0.05, lr_scheduler="constant", max_grad_norm=None,
                      checkpoint_every=2, progress_bar=False, adam_weight_decay=0.0,
                      gradient_accumulation_steps=accumulation)
    acc = make_accelerator(cfg)
    rank, world = acc.process_index, acc.num_processes
    g = torch.Generator().manual_seed(0)
    x, w_true = torch.randn(16, 3, generator=g), torch.tensor([[1.0, -2.0, 0.5]])
    y = x @ w_true.T
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    seen = []

    def loss_fn(models, micro, generator):
        idx = batch_indices(len(x), cfg.batch_size, micro, cfg.seed, rank, world)
        seen.append(idx)
        return ((models["m"](x[idx]) - y[idx]) ** 2).mean(), {}

    result = run_training(out, cfg, {"m": model}, {"m": model}, list(model.parameters()), loss_fn, accelerator=acc)
    (out / f"rank{rank}.json").write_text(json.dumps({"world": world, "step": result.step, "seen": seen,
                                                       "weight": model.weight.detach().tolist()[0],
                                                       "bias": model.bias.detach().tolist()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
