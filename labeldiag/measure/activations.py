"""Activation statistics read by hooks during check-logits' own forward pass (no extra pass), on its first
batches up to a bounded number of examples: the residual stream's norm after each block and how much each
block changes it (its update), and, for BERT-style self-attention (separate query / key projections), each layer's
attention entropy, one-hotness and mass on padding.
"""
from __future__ import annotations

import math
from typing import Any

from labeldiag.measure.hooks import _first_tensor, find_layer_stack
from labeldiag.records import Activations, AttentionStats, BlockStats


class ActivationTap:
    """Hooks on the stack's blocks (and BERT-style attention) that record until `limit` examples were seen."""

    def __init__(self, model: Any, limit: int):
        self.limit, self.seen = limit, 0
        self.mask: Any = None
        self.sums: dict[int, list[float]] = {}
        self.attn: dict[int, dict] = {}
        self.projected: dict[tuple[int, str], Any] = {}  # the attention's own query / key outputs, this batch
        self.handles = []
        self.stack_name, blocks = find_layer_stack(model)
        if not blocks:
            return
        self.handles.append(model.register_forward_pre_hook(self._inputs, with_kwargs=True))
        self.handles.append(model.register_forward_hook(self._done))
        for i, block in enumerate(blocks):
            self.handles.append(block.register_forward_hook(self._block(i), with_kwargs=True))
            attention = next((m for m in block.modules() if _bert_style_attention(m)), None)
            if attention is not None:
                # the query / key projections the model computes anyway are kept, not computed a second time
                self.handles += [attention.query.register_forward_hook(self._projection(i, "query")),
                                 attention.key.register_forward_hook(self._projection(i, "key")),
                                 attention.register_forward_hook(self._attention(i), with_kwargs=True)]
        self.attention_class = next((type(m).__name__ for b in blocks for m in b.modules()
                                     if _bert_style_attention(m)), None)

    @property
    def recording(self) -> bool:
        return self.seen < self.limit and self.mask is not None

    def _inputs(self, module, args, kwargs):
        import torch

        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            self.mask = mask.detach().bool()
        elif isinstance(ids, torch.Tensor) and ids.dim() == 2:
            self.mask = torch.ones_like(ids, dtype=torch.bool)
        else:
            self.mask = None

    def _done(self, module, args, output):
        if self.mask is not None:
            self.seen += int(self.mask.shape[0])
        self.mask = None

    def _block(self, index: int):
        def hook(module, args, kwargs, output):
            import torch

            x = args[0] if args else kwargs.get("hidden_states")
            y = _first_tensor(output)
            if not self.recording or not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) \
                    or x.shape != y.shape or x.shape[:2] != self.mask.shape:
                return None
            real = self.mask.to(x.device)
            xin, yout = x[real].float(), y[real].float()
            s = self.sums.setdefault(index, [0.0, 0.0, 0.0, 0, []])
            update = yout - xin
            s[0] += float((xin ** 2).sum())
            s[1] += float((yout ** 2).sum())
            s[2] += float((update ** 2).sum())
            s[3] += xin.numel()
            s[4].append(torch.linalg.vector_norm(update, dim=-1).cpu())
            return None
        return hook

    def _projection(self, index: int, which: str):
        def hook(module, args, output):
            if self.recording:
                self.projected[index, which] = output
            return None
        return hook

    def _attention(self, index: int):
        def hook(module, args, kwargs, output):
            import torch

            x = args[0] if args else kwargs.get("hidden_states")
            query, key = self.projected.pop((index, "query"), None), self.projected.pop((index, "key"), None)
            if not self.recording or not isinstance(x, torch.Tensor) or x.shape[:2] != self.mask.shape:
                return None
            b, t, _ = x.shape
            d = int(module.attention_head_size)
            query = query if _projected_from(query, x) else module.query(x)
            key = key if _projected_from(key, x) else module.key(x)
            q = query.float().view(b, t, -1, d).transpose(1, 2)
            k = key.float().view(b, t, -1, d).transpose(1, 2)
            # in place where the values are the same: each [b, heads, t, t] tensor is made once
            scores = (q @ k.transpose(-1, -2)).div_(math.sqrt(d))
            given = args[1] if len(args) > 1 else kwargs.get("attention_mask")
            if isinstance(given, torch.Tensor) and given.dim() == 4:
                if given.dtype == torch.bool:
                    scores.masked_fill_(~given.to(scores.device), float("-inf"))
                else:
                    scores += given.float()
            probs = torch.softmax(scores, dim=-1).nan_to_num_(0.0)  # [b, heads, t, t]
            del scores
            real = self.mask.to(x.device)
            keys = real.sum(1).clamp(min=2).float()  # real keys per example: uniform attention has entropy ln(keys)
            entropy = -(probs.clamp(min=1e-30).log_().mul_(probs)).sum(-1) / keys.log()[:, None, None]
            rows = real[:, None, :].expand(-1, probs.shape[1], -1)  # real query positions, per head
            a = self.attn.setdefault(index, {"entropy": 0.0, "max": 0.0, "pad": 0.0, "queries": 0, "examples": 0})
            a["entropy"] = a["entropy"] + (entropy * rows).sum((0, 2)).cpu()
            a["max"] = a["max"] + (probs.amax(-1) * rows).sum((0, 2)).cpu()
            a["pad"] += float((probs * (~real)[:, None, None, :]).sum(-1)[rows].sum())
            a["queries"] += int(rows[:, 0].sum())
            a["examples"] += b
            return None
        return hook

    def close(self) -> Activations:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        import torch

        blocks = tuple(BlockStats(name=f"{self.stack_name}.{i}", index=i, rms_in=math.sqrt(s[0] / s[3]),
                                  rms_out=math.sqrt(s[1] / s[3]), change=math.sqrt(s[2] / max(s[0], 1e-30)),
                                  median_update=float(torch.cat(s[4]).median()))
                       for i, s in sorted(self.sums.items()) if s[3])
        attention = []
        for i, a in sorted(self.attn.items()):
            n = max(1, a["queries"])
            heads = a["entropy"].shape[0] if hasattr(a["entropy"], "shape") else 0
            attention.append(AttentionStats(
                name=f"{self.stack_name}.{i}", index=i,
                entropy_per_head=tuple(float(v) / n for v in a["entropy"]) if heads else (),
                max_weight_per_head=tuple(float(v) / n for v in a["max"]) if heads else (),
                pad_mass=a["pad"] / (n * max(1, heads)), examples=a["examples"]))
        return Activations(blocks=blocks, attention=tuple(attention), examples=self.seen,
                           attention_source=self.attention_class if attention else
                           "no BERT-style self-attention (query / key projections) to read")


def _projected_from(projected: Any, x: Any) -> bool:
    """A projection the hook kept is of this call's input: [batch, tokens, ...] as x."""
    return projected is not None and projected.shape[:2] == x.shape[:2]


def _bert_style_attention(module: Any) -> bool:
    import torch

    return (isinstance(getattr(module, "query", None), torch.nn.Linear)
            and isinstance(getattr(module, "key", None), torch.nn.Linear)
            and isinstance(getattr(module, "attention_head_size", None), int))
