"""Llama classifiers with the defects only a sharded run shows, for --model-class FILE.py:Class.

Each defect is real code a user could have written: an initialisation that depends on the rank, or a
rank that dies / stalls (LABELDIAG_TEST_FAULT=die|stall).
"""
from __future__ import annotations

import os
import time

import torch
from transformers import LlamaForSequenceClassification


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


class HeadPerRankForSequenceClassification(LlamaForSequenceClassification):
    """Loads the checkpoint, then re-draws the head from a generator seeded by the rank."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading info) when asked
        with torch.no_grad():
            model.score.weight.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(1000 + _rank()))
        return loaded


class InitPerRankForSequenceClassification(LlamaForSequenceClassification):
    """Built from a config, its first block's matrices come from a generator seeded by the rank (a checkpoint
    overwrites them, so only a model built from the config differs between ranks)."""

    def __init__(self, config):
        super().__init__(config)
        generator = torch.Generator().manual_seed(1000 + _rank())
        with torch.no_grad():
            for p in self.model.layers[0].parameters():
                if p.dim() > 1 and p.device.type != "meta":
                    p.normal_(0.0, 0.02, generator=generator)


class FaultOnRank1ForSequenceClassification(LlamaForSequenceClassification):
    """Rank 1 dies (os._exit), stalls (sleeps) or raises in its first forward, as LABELDIAG_TEST_FAULT says."""

    def forward(self, *args, **kwargs):
        fault = os.environ.get("LABELDIAG_TEST_FAULT")
        if _rank() == 1 and fault == "raise":
            raise RuntimeError("a fault planted on rank 1")
        if _rank() == 1 and fault == "die":
            os._exit(9)
        if _rank() == 1 and fault == "stall":
            time.sleep(600)
        return super().forward(*args, **kwargs)


class BothPerRankForSequenceClassification(HeadPerRankForSequenceClassification, InitPerRankForSequenceClassification):
    """Both defects at once: one launch plants head-differs-across-ranks and sharded-forward-mismatch."""
