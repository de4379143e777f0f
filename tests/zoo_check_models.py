"""Custom model classes with one defect each, loaded through --model-class in the tests."""
import torch
import torch.nn.functional as F
from transformers import BertForSequenceClassification


class AlwaysDropout(BertForSequenceClassification):
    """Dropout applied with training=True even in eval mode: every evaluation differs."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = F.dropout(out.logits, p=0.5, training=True)
        return out


class ListOfArrays(BertForSequenceClassification):
    """Returns logits as a Python list of per-example numpy arrays (the label-token seed's habit)."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        return [row.detach().numpy() for row in out.logits]


class TupleOutput(BertForSequenceClassification):
    """Returns a bare (logits,) tuple, like return_dict=False."""

    def forward(self, *args, **kwargs):
        kwargs["return_dict"] = False
        return super().forward(*args, **kwargs)


class RaisingForward(BertForSequenceClassification):
    def forward(self, *args, **kwargs):
        raise ValueError("shapes do not match in my custom head")


class NotAModule:
    @classmethod
    def from_pretrained(cls, path):
        return cls()


def helper_function():
    return torch.zeros(1)
