"""Plant faults in a real fine-tuned classifier and show what check-logits says about each.

Calibrates label-permutation against predictions-weakly-informative (issue 23): a model whose output
rows are reordered is right under other names (label-permutation, and `fix` repairs it), while a model
whose weights are damaged depends on the gold label only weakly, and no renaming repairs it.

    python examples/realmodels.py bbc --out /tmp/realmodels        # or use an existing healthy checkpoint
    python examples/damaged_models.py /tmp/realmodels/bbc          # folder holding model/ and test.jsonl
    python examples/damaged_models.py /tmp/realmodels/bbc --save /tmp/damaged   # also write each model

Cases (all on a copy in memory; the checkpoint is only read):
  healthy            the checkpoint as it is
  rows-reordered     classifier rows rolled by one (logit i now scores label i-1): names are wrong, model right
  ffn-scrambled      the entries of one FFN's weight matrices shuffled (layer 2, or the last of fewer)
  residual-noise-S   Gaussian noise of S x each matrix's std added to every layer's output projections
  head-xavier-K      the classifier re-initialised with Xavier-uniform weights (seed K), bias zero
  rows-reordered+noise-0.3  reordered rows on a lightly damaged model (still mostly right under the mapping)
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def reorder_rows(model) -> None:
    import torch

    head = model.classifier
    with torch.no_grad():
        head.weight.copy_(torch.roll(head.weight, 1, dims=0))
        head.bias.copy_(torch.roll(head.bias, 1, dims=0))


def scramble_ffn(model, layer: int = 2, seed: int = 0) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    layers = model.bert.encoder.layer
    block = layers[min(layer, len(layers) - 1)]
    with torch.no_grad():
        for linear in (block.intermediate.dense, block.output.dense):
            flat = linear.weight.view(-1)
            flat.copy_(flat[torch.randperm(flat.numel(), generator=g)])


def residual_noise(model, scale: float, seed: int = 0) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.bert.encoder.layer:
            for linear in (block.attention.output.dense, block.output.dense):
                w = linear.weight
                w.add_(torch.randn(w.shape, generator=g) * w.std() * scale)


def xavier_head(model, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        torch.nn.init.xavier_uniform_(model.classifier.weight)
        model.classifier.bias.zero_()


CASES = {
    "healthy": [],
    "rows-reordered": [reorder_rows],
    "ffn-scrambled": [scramble_ffn],
    "residual-noise-0.3": [lambda m: residual_noise(m, 0.3)],
    "residual-noise-1": [lambda m: residual_noise(m, 1.0)],
    "residual-noise-2": [lambda m: residual_noise(m, 2.0)],
    "head-xavier-0": [lambda m: xavier_head(m, 0)],
    "head-xavier-1": [lambda m: xavier_head(m, 1)],
    "head-xavier-2": [lambda m: xavier_head(m, 2)],
    "rows-reordered+noise-0.3": [reorder_rows, lambda m: residual_noise(m, 0.3)],
}
KEPT = ("label-permutation", "predictions-weakly-informative", "random-predictions", "constant-predictions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a realmodels.py output folder: model/ and test.jsonl")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--save", help="also save each damaged model under this folder")
    args = parser.parse_args()
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from labeldiag import check_logits
    from labeldiag.checks.logits import best_mapping
    from labeldiag.checks.mapping import cohens_kappa

    folder = Path(args.folder)
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    base = AutoModelForSequenceClassification.from_pretrained(folder / "model").eval()
    data = str(folder / "test.jsonl")
    print(f"{'case':26} {'identity':>8} {'mapped':>7} {'conf':>6} {'kappa':>6}  verdict")
    for name in args.cases.split(","):
        model = copy.deepcopy(base)
        for plant in CASES[name]:
            plant(model)
        report = check_logits(model, data, tokenizer=tokenizer, max_length=128)
        table = np.array(report.metrics["confusion_matrix"])
        mapped = table[best_mapping(table), np.arange(table.shape[1])].sum() / table.sum()
        kappa = cohens_kappa(table, best_mapping(table))
        verdict = [f"{f.code} ({f.severity})" for f in report.sorted_findings() if f.code in KEPT]
        print(f"{name:26} {report.metrics['accuracy']:8.1%} {mapped:7.1%} "
              f"{report.metrics['mean_max_probability']:6.2f} {kappa:6.2f}  {', '.join(verdict) or '-'}")
        for f in report.sorted_findings():
            if f.code in KEPT[:2]:
                print(f"    {f.message}")
        if args.save:
            out = Path(args.save) / name
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
