"""DistilBERT-style sequence classifier (SEEDS.md, situation 5).

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

The ReLU is an ``nn.ReLU`` module (``self.activation``) rather than the inline
functional call of upstream so that forward hooks can watch it.
"""

import torch
import torch.nn as nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import DistilBertConfig, DistilBertModel, DistilBertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class DistilStyleClassifier(DistilBertPreTrainedModel):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"

    def __init__(self, config):
        super().__init__(config)
        if not hasattr(config, "dead_pre_classifier"):
            config.dead_pre_classifier = False
        if not hasattr(config, "dead_bias_value"):
            config.dead_bias_value = -50.0
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.post_init()
        if config.dead_pre_classifier:
            # after post_init, so the regular init does not undo it; a saved
            # checkpoint carries the value in its weights anyway
            with torch.no_grad():
                self.pre_classifier.bias.fill_(float(config.dead_bias_value))

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        kwargs.pop("return_dict", None)
        kwargs.pop("token_type_ids", None)  # DistilBERT has no segment embeddings
        outputs = self.distilbert(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = outputs.last_hidden_state  # [B, T, dim]
        pooled = hidden[:, 0]
        pooled = self.pre_classifier(pooled)
        pooled = self.activation(pooled)
        pooled = self.dropout(pooled)
        logits = self.classifier(pooled)

        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                if self.num_labels == 1:
                    loss = MSELoss()(logits.squeeze(), labels.squeeze())
                else:
                    loss = MSELoss()(logits, labels)
            elif self.config.problem_type == "single_label_classification":
                loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            elif self.config.problem_type == "multi_label_classification":
                loss = BCEWithLogitsLoss()(logits, labels)

        return SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
