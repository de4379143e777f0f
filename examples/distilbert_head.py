"""DistilBERT-style sequence classifier (SEEDS.md, situation 5), on DistilBERT or BERT.

first token -> pre_classifier Linear(dim, dim) -> ReLU -> dropout ->
classifier Linear(dim, num_labels). The loss is chosen from
``config.problem_type`` exactly as transformers does it, inferring (and
storing) the type on the first call when unset:

* num_labels == 1                     -> "regression" (MSE)
* num_labels > 1 and integer labels   -> "single_label_classification" (CE)
* anything else (e.g. float labels)   -> "multi_label_classification" (BCE)

So float labels such as 1.0 silently switch a single-label task to BCE (and
with [batch]-shaped labels BCE then fails on the shape mismatch).

Broken variant: ``config.dead_pre_classifier = True`` sets the
pre_classifier bias to a large negative value (``dead_bias_value``, -50)
right after init, so every ReLU unit is off for every input: the classifier
sees zeros and nothing below the classifier bias gets any gradient.

``DistilStyleBert`` puts the same head and loss choice on a BERT encoder
(e.g. a pretrained MiniLM, for which no DistilBERT weights exist offline).

The ReLU is an ``nn.ReLU`` module (``self.activation``) rather than the inline
functional call of upstream so that forward hooks can watch it.
"""

import torch
import torch.nn as nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import (
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    DistilBertConfig,
    DistilBertModel,
    DistilBertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput


def pick_loss(config, num_labels, logits, labels):
    """The loss transformers' classifiers pick: from problem_type, inferred (and stored) when unset."""
    labels = labels.to(logits.device)
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if num_labels == 1:
            return MSELoss()(logits.squeeze(), labels.squeeze())
        return MSELoss()(logits, labels)
    if config.problem_type == "single_label_classification":
        return CrossEntropyLoss()(logits.view(-1, num_labels), labels.view(-1))
    return BCEWithLogitsLoss()(logits, labels)


def _attach_head(model, config, dim, dropout):
    """pre_classifier -> ReLU -> dropout -> classifier on `model`, and the dead-ReLU switches on config."""
    if not hasattr(config, "dead_pre_classifier"):
        config.dead_pre_classifier = False
    if not hasattr(config, "dead_bias_value"):
        config.dead_bias_value = -50.0
    model.num_labels = config.num_labels
    model.pre_classifier = nn.Linear(dim, dim)
    model.activation = nn.ReLU()
    model.dropout = nn.Dropout(dropout)
    model.classifier = nn.Linear(dim, config.num_labels)


def _kill_relus(model):
    # after post_init, so the regular init does not undo it; a saved
    # checkpoint carries the value in its weights anyway
    with torch.no_grad():
        model.pre_classifier.bias.fill_(float(model.config.dead_bias_value))


def _classify(model, hidden, labels, outputs):
    pooled = model.activation(model.pre_classifier(hidden[:, 0]))
    logits = model.classifier(model.dropout(pooled))
    loss = pick_loss(model.config, model.num_labels, logits, labels) if labels is not None else None
    return SequenceClassifierOutput(
        loss=loss,
        logits=logits,
        hidden_states=getattr(outputs, "hidden_states", None),
        attentions=getattr(outputs, "attentions", None),
    )


class DistilStyleClassifier(DistilBertPreTrainedModel):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"

    def __init__(self, config):
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        _attach_head(self, config, config.dim, config.seq_classif_dropout)
        self.post_init()
        if config.dead_pre_classifier:
            _kill_relus(self)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        kwargs.pop("return_dict", None)
        kwargs.pop("token_type_ids", None)  # DistilBERT has no segment embeddings
        outputs = self.distilbert(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return _classify(self, outputs.last_hidden_state, labels, outputs)


class DistilStyleBert(BertPreTrainedModel):
    """The DistilBERT head and loss choice on a BERT encoder (no pooler: the head reads [CLS])."""

    config_class = BertConfig
    base_model_prefix = "bert"

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        drop = getattr(config, "classifier_dropout", None)
        _attach_head(self, config, config.hidden_size, drop if drop is not None else config.hidden_dropout_prob)
        self.post_init()
        if config.dead_pre_classifier:
            _kill_relus(self)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        kwargs.pop("return_dict", None)
        outputs = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
        )
        return _classify(self, outputs.last_hidden_state, labels, outputs)
