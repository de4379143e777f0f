"""BERT classifier trained with cross-entropy + supervised contrastive loss
(SEEDS.md, situation 3).

pooled output -> dropout -> linear head; loss = CE + alpha * SupCon, with
SupCon as in Khosla et al. 2020 (temperature 0.07) computed on the pooled
features. Two "views" per example are made with two independent dropout
masks on the pooled vector, giving features shaped [batch, n_views=2, dim].

Broken variant: ``config.supcon_views_bug = True`` passes the pooled output
[batch, dim] straight to ``supcon_loss``. The function reads
``features.shape[1]`` as the number of views and reshapes to
[batch, dim, 1]: every hidden dimension becomes a one-dimensional "view".
Normalising a one-dimensional vector leaves only its sign, so the term has a
different magnitude, treats batch*dim anchors, and sends (almost) no gradient
back into the encoder.

The returned ``SupConClassifierOutput`` carries ``ce_loss`` and
``supcon_loss`` beside ``loss`` and ``logits`` so each component can be
inspected separately.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.utils import ModelOutput


@dataclass
class SupConClassifierOutput(ModelOutput):
    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    ce_loss: Optional[torch.FloatTensor] = None
    supcon_loss: Optional[torch.FloatTensor] = None
    hidden_states: Optional[Tuple[torch.FloatTensor, ...]] = None
    attentions: Optional[Tuple[torch.FloatTensor, ...]] = None


def supcon_loss(features, labels, temperature=0.07, base_temperature=0.07):
    """Supervised contrastive loss (Khosla et al. 2020), own implementation.

    ``features``: [batch, n_views, ...]; anything after dim 1 is flattened
    into the feature vector. NOTE the silent reshape: a 2-D input
    [batch, dim] is read as [batch, n_views=dim, 1] -- the bug of seed 3.
    ``labels``: [batch] integer class ids.
    """
    if features.dim() < 2:
        raise ValueError("features must be at least [batch, n_views]")
    bsz, n_views = features.shape[0], features.shape[1]
    feats = F.normalize(features.reshape(bsz, n_views, -1), dim=-1)
    # [n_views*bsz, d], view-major like the reference code
    contrast = torch.cat(torch.unbind(feats, dim=1), dim=0)
    labels = labels.reshape(-1, 1)
    same = torch.eq(labels, labels.T).float().to(features.device).repeat(n_views, n_views)
    n = contrast.shape[0]
    not_self = 1.0 - torch.eye(n, device=features.device)
    positives = same * not_self

    logits = contrast @ contrast.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    exp = torch.exp(logits) * not_self
    log_prob = logits - torch.log(exp.sum(dim=1, keepdim=True))
    pos_count = positives.sum(dim=1)
    has_pos = pos_count > 0  # anchors without a positive are skipped (no NaN)
    mean_log_prob_pos = (positives * log_prob).sum(dim=1)[has_pos] / pos_count[has_pos]
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.mean()


class BertWithSupCon(BertPreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"

    def __init__(self, config):
        super().__init__(config)
        for name, default in (
            ("supcon_alpha", 0.2),
            ("supcon_temperature", 0.07),
            ("supcon_views_bug", False),
        ):
            if not hasattr(config, name):
                setattr(config, name, default)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=True)
        drop = getattr(config, "classifier_dropout", None)
        self.dropout = nn.Dropout(drop if drop is not None else config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def contrastive_features(self, pooled):
        if self.config.supcon_views_bug:
            return pooled  # [B, H] -- read as H one-dimensional views
        return torch.stack([self.dropout(pooled), self.dropout(pooled)], dim=1)  # [B, 2, H]

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        kwargs.pop("return_dict", None)
        outputs = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
        )
        pooled = outputs.pooler_output
        logits = self.classifier(self.dropout(pooled))

        loss = ce = sc = None
        if labels is not None:
            labels = labels.to(logits.device).long().view(-1)
            ce = F.cross_entropy(logits, labels)
            sc = supcon_loss(
                self.contrastive_features(pooled), labels, temperature=self.config.supcon_temperature,
                base_temperature=self.config.supcon_temperature,
            )
            loss = ce + self.config.supcon_alpha * sc
        return SupConClassifierOutput(
            loss=loss,
            logits=logits,
            ce_loss=ce,
            supcon_loss=sc,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
