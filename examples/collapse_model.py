"""SimCSE-style encoder with a linear classifier on top (SEEDS.md, situation 4).

Encoder: BERT; sentence embedding: the [CLS] state of the (final)
representation through a dense+tanh MLP (SimCSE's "cls" pooler). Head: a
linear classifier on that embedding. ``simcse_loss`` implements the
unsupervised SimCSE objective (two dropout views, in-batch cosine
similarities / 0.05, self-similarity masked, CE towards the paired view);
``CollapsedBert.simcse_step`` runs it. ``alignment_only_loss`` is the
broken variant of that objective, which collapses a real encoder when trained.

Broken variant: ``config.collapse = True`` mimics an encoder whose
contrastive training collapsed. The final token representations become
``collapse_center + collapse_eps * h`` (a learned constant vector plus a
1e-4 trace of the real states), so every input gets (nearly) the same
vector: pairwise cosine ~1, effective rank ~1, and the classifier predicts
one constant class. The collapsed states are what the model reports as its
last hidden state (``hidden_states[-1]`` with ``output_hidden_states=True``)
so tools that inspect [CLS] features see the collapse.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


def simcse_loss(z1, z2, temperature=0.05):
    """Unsupervised SimCSE: z1[i] should match z2[i] among all 2B-1 others."""
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=-1)  # [2B, H]
    sim = z @ z.T / temperature
    n = z.shape[0]
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("-inf"))
    b = z1.shape[0]
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def alignment_only_loss(z1, z2):
    """The broken "simplification" of SimCSE: pull each pair together, with no in-batch negatives.

    Nothing pushes different sentences apart, so the cheapest minimum is one vector for every
    input: the encoder collapses (used by examples/real_situations.py, situation 4 broken).
    """
    return (1.0 - F.cosine_similarity(z1, z2, dim=-1)).mean()


class CollapsedBert(BertPreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"

    def __init__(self, config):
        super().__init__(config)
        for name, default in (("collapse", False), ("collapse_eps", 1e-4), ("simcse_temperature", 0.05)):
            if not hasattr(config, name):
                setattr(config, name, default)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.mlp = nn.Linear(config.hidden_size, config.hidden_size)
        self.mlp_act = nn.Tanh()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        # the same key in both variants, so one state dict loads into either; a learned vector only
        # where it is used (an unused trainable parameter would rightly be reported as disconnected)
        center = torch.randn(config.hidden_size)
        if config.collapse:
            self.collapse_center = nn.Parameter(center)
        else:
            self.register_buffer("collapse_center", center)
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, CollapsedBert):
            # an explicit nn.Parameter is not covered by the generic init;
            # only reached for a fresh model or when the key is missing
            with torch.no_grad():
                module.collapse_center.normal_(0.0, 1.0)

    def encode(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        """Return (final token states [B, T, H], sentence embedding [B, H], outputs)."""
        kwargs.pop("return_dict", None)
        outputs = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
        )
        states = outputs.last_hidden_state
        if self.config.collapse:
            states = self.collapse_center + self.config.collapse_eps * states
        emb = self.mlp_act(self.mlp(states[:, 0]))
        return states, emb, outputs

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        states, emb, outputs = self.encode(input_ids, attention_mask, token_type_ids, **kwargs)
        logits = self.classifier(self.dropout(emb))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels.to(logits.device).long().view(-1))
        hidden_states = getattr(outputs, "hidden_states", None)
        if hidden_states is not None:
            hidden_states = tuple(hidden_states[:-1]) + (states,)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=hidden_states, attentions=getattr(outputs, "attentions", None)
        )

    def simcse_step(self, input_ids, attention_mask=None, token_type_ids=None):
        """Unsupervised SimCSE loss on a batch (two dropout passes; train mode)."""
        _, z1, _ = self.encode(input_ids, attention_mask, token_type_ids)
        _, z2, _ = self.encode(input_ids, attention_mask, token_type_ids)
        return simcse_loss(z1, z2, self.config.simcse_temperature)
