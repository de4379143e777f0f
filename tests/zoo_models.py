"""Deliberately broken tiny classifiers, each named after its defect (loaded via --model-class FILE.py:Class).
tests/zoo.py lists which command must catch each one and with which code.

Only absolute imports: labeldiag loads this file standalone.
"""
import math

import torch
from torch import nn
from transformers import BertForSequenceClassification, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


def _ce(logits, labels):
    return nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None


class DetachedPooledBert(BertForSequenceClassification):
    """Defect: the pooled output is .detach()-ed, so the encoder never gets a gradient."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = self.classifier(self.dropout(out.pooler_output.detach()))
        return SequenceClassifierOutput(loss=_ce(logits, labels), logits=logits)


class UnscaledLogitsBert(BertForSequenceClassification):
    """Defect: logits multiplied by 1000 (a temperature applied the wrong way round)."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = self.classifier(self.dropout(out.pooler_output)) * 1000.0
        return SequenceClassifierOutput(loss=_ce(logits, labels), logits=logits)


class LogTanh(nn.Module):
    """log of a tanh: NaN for every negative unit."""

    def forward(self, x):
        return torch.log(torch.tanh(x))


class NaNPoolerBert(BertForSequenceClassification):
    """Defect: the pooler's activation takes the log of tanh -> NaN in the forward pass."""

    def __init__(self, config):
        super().__init__(config)
        self.bert.pooler.activation = LogTanh()


class ZeroNormTanh(nn.Module):
    """tanh plus the norm of a zero vector: finite forward, NaN backward (d sqrt(0) = inf)."""

    def forward(self, x):
        y = torch.tanh(x)
        return y + torch.sqrt(((y - y) ** 2).sum(-1, keepdim=True))


class NaNGradientBert(BertForSequenceClassification):
    """Defect: a zero-vector norm in the pooler makes every gradient below it NaN."""

    def __init__(self, config):
        super().__init__(config)
        self.bert.pooler.activation = ZeroNormTanh()


class ReluOnLogitsBert(BertForSequenceClassification):
    """Defect: a ReLU after the head: once a step pushes every logit below zero, predictions are constant for good."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = torch.relu(self.classifier(out.pooler_output))
        return SequenceClassifierOutput(loss=_ce(logits, labels), logits=logits)


class FrozenEncoderBert(BertForSequenceClassification):
    """Frozen on purpose: only the head trains (info). Frozen after loading (transformers 5 loads into
    new parameters, so a freeze in __init__ would not survive from_pretrained)."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading_info) when asked
        for p in model.bert.parameters():
            p.requires_grad_(False)
        return loaded


class AllFrozenBert(BertForSequenceClassification):
    """Defect: nothing at all is trainable."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).requires_grad_(False)
        return loaded


class DetachedFrozenHeadBert(DetachedPooledBert):
    """Defect: head frozen and features detached, so the loss depends on no trainable parameter."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).classifier.requires_grad_(False)
        return loaded


class AlwaysDropoutBert(BertForSequenceClassification):
    """Defect: dropout applied with training=True even in eval mode, so every evaluation differs."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = nn.functional.dropout(out.logits, p=0.5, training=True)
        return out


class ListOfArraysBert(BertForSequenceClassification):
    """Not a defect: logits as a Python list of per-example numpy arrays (the label-token seed's habit)."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        return [row.detach().numpy() for row in out.logits]


class TupleOutputBert(BertForSequenceClassification):
    """Not a defect: a bare (logits,) tuple, like return_dict=False."""

    def forward(self, *args, **kwargs):
        kwargs["return_dict"] = False
        return super().forward(*args, **kwargs)


def _damp_gradient(module, args, kwargs):
    """Leave the forward unchanged but pass only 1e-4 of the gradient back into the block's input."""
    def damp(h):
        return h.detach() + (h - h.detach()) * 1e-4
    if args:
        return (damp(args[0]),) + tuple(args[1:]), kwargs
    kwargs = dict(kwargs)
    kwargs["hidden_states"] = damp(kwargs["hidden_states"])
    return args, kwargs


class GradientDampedBert(BertForSequenceClassification):
    """Defect: the last encoder block's input passes back 1e-4 of its gradient (a saturated gate)."""

    def __init__(self, config):
        super().__init__(config)
        self.bert.encoder.layer[-1].register_forward_pre_hook(_damp_gradient, with_kwargs=True)


class LabelTokenBert(BertPreTrainedModel):
    """Scores class c by <last-layer state at position c+1, pooled [CLS]> / sqrt(hidden); no linear head."""

    detach_label_tokens = False

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        positions = list(range(1, self.config.num_labels + 1))
        states = out.last_hidden_state[:, positions]  # [B, C, H]
        if self.detach_label_tokens:
            states = states.detach()
        logits = torch.einsum("bch,bh->bc", states, out.pooler_output) / math.sqrt(self.config.hidden_size)
        return SequenceClassifierOutput(loss=_ce(logits, labels), logits=logits)


class DetachedLabelTokenBert(LabelTokenBert):
    """Defect: the label-token states are .detach()-ed, so those positions never learn."""

    detach_label_tokens = True
