"""Tiny BERT classifiers with one training defect each, named by the defect (loaded with --model-class)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput


def _pooled(model, input_ids, attention_mask=None, token_type_ids=None):
    return model.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[1]


def _model(loaded):
    return loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True gives (model, info)


def _out(logits, labels):
    loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
    return SequenceClassifierOutput(loss=loss, logits=logits)


class FrozenEverything(BertForSequenceClassification):
    """requires_grad=False on every parameter, set after loading (a freeze meant for the encoder only)."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        out = super().from_pretrained(*args, **kwargs)
        _model(out).requires_grad_(False)  # after loading: transformers 5 re-creates parameters while loading
        return out


class DetachedLogits(BertForSequenceClassification):
    """Head frozen and features detached: the loss depends on no trainable parameter."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        out = super().from_pretrained(*args, **kwargs)
        _model(out).classifier.requires_grad_(False)
        return out

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **kw):
        return _out(self.classifier(_pooled(self, input_ids, attention_mask, token_type_ids).detach()), labels)


class DetachedEncoder(BertForSequenceClassification):
    """The head reads detached features: the whole encoder gets no gradient and never moves."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **kw):
        return _out(self.classifier(_pooled(self, input_ids, attention_mask, token_type_ids).detach()), labels)


class ReluOnLogits(BertForSequenceClassification):
    """A ReLU after the head: once a step pushes every logit below zero, predictions are constant for good."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **kw):
        return _out(torch.relu(self.classifier(_pooled(self, input_ids, attention_mask, token_type_ids))), labels)


class UnscaledLogits(BertForSequenceClassification):
    """Logits multiplied by 100 (an unscaled dot product): a fresh head starts far above ln C."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **kw):
        return _out(100.0 * self.classifier(_pooled(self, input_ids, attention_mask, token_type_ids)), labels)
