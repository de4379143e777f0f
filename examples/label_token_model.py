"""Label-token classifiers, RoBERTa and BERT (SEEDS.md, situation 1).

There is no linear head. The input carries one label token per class right
after ``<s>`` (``config.label_token_positions``, default ``[1, 2, 3]`` for the
three MNLI classes). The score of class ``c`` is the dot product of the
last-layer hidden state at position ``label_token_positions[c]`` with the
tanh pooler output of ``<s>``.

Behaviour is switched by config attributes, so that a saved checkpoint
reproduces its own variant after ``from_pretrained``:

* ``scale_scores`` (healthy: True): divide the dot products by sqrt(hidden).
  Unscaled dot products of wide vectors are huge, softmax is one-hot, the
  loss at init is far above ln(3) and gradients through softmax vanish.
* ``detach_label_tokens`` (broken: True): the label-token states are
  ``.detach()``-ed, so no gradient ever reaches those positions.
* ``numpy_logits`` (broken: True): logits come back as a Python list of
  per-example numpy arrays (how the seed author collected them); the model
  then returns a plain tuple ``(loss, logits)``, or the bare list without
  labels, instead of a ``SequenceClassifierOutput``.
* ``loop_loss`` (broken: True): cross-entropy computed one example at a time
  in a Python loop, weighted by the example's index 1..B and divided by the
  sum of the weights (slow, and later examples count more).

Only absolute imports from torch / numpy / transformers: the file is loaded
standalone through ``FILE.py:Class``.
"""

import math
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    RobertaConfig,
    RobertaModel,
    RobertaPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

DEFAULT_LABEL_TOKEN_POSITIONS = [1, 2, 3]

# defaults of the behaviour switches (the healthy variant)
_FLAG_DEFAULTS = {
    "scale_scores": True,
    "detach_label_tokens": False,
    "numpy_logits": False,
    "loop_loss": False,
}


class LabelTokenScoring:
    """The label-token scoring and loss, shared by the RoBERTa and BERT classes.

    ``self.base_model`` is the encoder (``roberta`` or ``bert``, by the
    class's ``base_model_prefix``), built with its tanh pooler.
    """

    def _read_label_token_config(self, config):
        positions = getattr(config, "label_token_positions", None) or list(DEFAULT_LABEL_TOKEN_POSITIONS)
        # write everything back onto the config so that save_pretrained stores it
        config.label_token_positions = [int(p) for p in positions]
        for name, default in _FLAG_DEFAULTS.items():
            if not hasattr(config, name):
                setattr(config, name, default)
        if config.num_labels != len(config.label_token_positions):
            raise ValueError(
                f"num_labels={config.num_labels} but {len(config.label_token_positions)} label-token positions"
            )
        self.num_labels = config.num_labels

    # ------------------------------------------------------------------
    def label_scores(self, input_ids, attention_mask=None, **kwargs):
        """Return (scores [B, C] torch tensor, encoder outputs)."""
        kwargs.pop("return_dict", None)
        kwargs.pop("labels", None)
        outputs = self.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        # The last layer is ``last_hidden_state`` (== hidden_states[-1] when
        # output_hidden_states=True). Indexing ``outputs[1]`` or
        # ``hidden_states`` without asking for them is the classic bug: the
        # first is the pooler output, the second is None.
        last = outputs.last_hidden_state  # [B, T, H]
        pooled = outputs.pooler_output  # [B, H], tanh(dense(h_<s>))
        pos = torch.as_tensor(self.config.label_token_positions, device=last.device)
        label_states = last.index_select(1, pos)  # [B, C, H]
        if self.config.detach_label_tokens:
            label_states = label_states.detach()
        scores = torch.einsum("bch,bh->bc", label_states, pooled)
        if self.config.scale_scores:
            scores = scores / math.sqrt(last.shape[-1])
        return scores, outputs

    @staticmethod
    def _loop_loss(scores, labels):
        # seed author's loss: per-example CE, weights 1..B, normalised
        total = scores.new_zeros(())
        weight_sum = 0.0
        for i in range(scores.shape[0]):
            w = float(i + 1)
            total = total + w * F.cross_entropy(scores[i : i + 1], labels[i : i + 1])
            weight_sum += w
        return total / weight_sum

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        scores, outputs = self.label_scores(input_ids, attention_mask=attention_mask, **kwargs)

        loss = None
        if labels is not None:
            labels = labels.to(scores.device).long().view(-1)
            if self.config.loop_loss:
                loss = self._loop_loss(scores, labels)
            else:
                loss = F.cross_entropy(scores, labels)

        if self.config.numpy_logits:
            logits: List[np.ndarray] = [row.detach().cpu().numpy() for row in scores]
            return (loss, logits) if loss is not None else logits

        return SequenceClassifierOutput(
            loss=loss,
            logits=scores,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )


class LabelTokenRoberta(LabelTokenScoring, RobertaPreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"

    def __init__(self, config):
        super().__init__(config)
        self._read_label_token_config(config)
        self.roberta = RobertaModel(config, add_pooling_layer=True)
        self.post_init()


class LabelTokenBert(LabelTokenScoring, BertPreTrainedModel):
    """The same model on a BERT encoder (e.g. a pretrained MiniLM), label words after [CLS]."""

    config_class = BertConfig
    base_model_prefix = "bert"

    def __init__(self, config):
        super().__init__(config)
        self._read_label_token_config(config)
        self.bert = BertModel(config, add_pooling_layer=True)
        self.post_init()
