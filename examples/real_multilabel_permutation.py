"""Calibrate label-permutation on a real multi-label head (issue 19): the healthy MiniLM of
examples/real_shapes.py, its head rows permuted (found, and `fix` renames them back), and damaged heads
(Xavier re-initialised, residual noise 2x) that must not pass as a permutation:

    python examples/real_shapes.py multilabel --out /tmp/real_shapes
    python examples/real_multilabel_permutation.py /tmp/real_shapes/multilabel --work /tmp/perm_ml
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np


def edited_copy(src: Path, dst: Path, edit) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    file = next(dst.glob("*.safetensors"))
    tensors = load_file(str(file))
    edit(tensors)
    save_file(tensors, str(file), metadata={"format": "pt"})
    return dst


def line(tag: str, report) -> str:
    ml = report.metrics["multilabel"]
    auroc = np.array(ml["auroc_matrix"], dtype=float)
    off_diagonal = np.nanmax(np.where(np.eye(len(auroc), dtype=bool), np.nan, auroc))
    text = (f"{tag:10s} codes {[f.code for f in report.findings]} micro-F1 {ml['micro_f1']:.3f} own-label AUROC "
            f"{np.round(np.diag(auroc), 3).tolist()} best other-label AUROC {off_diagonal:.2f}")
    for f in report.findings:
        if f.code == "label-permutation":
            text += f"\n           gain {f.evidence['mean_auroc_gain']:.3f}: " + ", ".join(
                f"logit {c['logit']} -> {c['behaves_like']} (AUROC {c['auroc_mapped']:.3f}, as labelled "
                f"{c['auroc_as_labelled']:.3f}, p {c['p_value']:.2g})" for c in f.evidence["moved"])
    return text


def main() -> None:
    import torch

    from labeldiag import check_logits, fix

    parser = argparse.ArgumentParser()
    parser.add_argument("built", type=Path, help="the folder real_shapes.py multilabel wrote (model/, test.jsonl)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/perm_ml"))
    args = parser.parse_args()
    src, data = args.built / "model", str(args.built / "test.jsonl")
    print(line("healthy", check_logits(str(src), data)))
    for name, order in [("swap01", [1, 0, 2, 3, 4]), ("cycle3", [1, 2, 0, 3, 4]), ("reverse", [4, 3, 2, 1, 0])]:
        def permute(t, order=order):
            for key in ("classifier.weight", "classifier.bias"):
                t[key] = t[key][order].contiguous()
        model = edited_copy(src, args.work / name, permute)
        print(line(name, check_logits(str(model), data)))
        out = args.work / f"{name}-fixed"
        shutil.rmtree(out, ignore_errors=True)
        print(line("  fixed", fix(str(model), data, str(out))))
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)

        def xavier(t):
            w = t["classifier.weight"]
            t["classifier.weight"] = (torch.randn(w.shape, generator=generator) * (2 / sum(w.shape)) ** 0.5).to(w.dtype)

        def noise(t):
            w = t["classifier.weight"]
            t["classifier.weight"] = (w + 2 * w.std() * torch.randn(w.shape, generator=generator)).to(w.dtype)
        for name, edit in (("xavier", xavier), ("noise2x", noise)):
            print(line(f"{name} {seed}", check_logits(str(edited_copy(src, args.work / "damaged", edit)), data)))


if __name__ == "__main__":
    main()
