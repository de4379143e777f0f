"""Tiny configs (hidden 32, 2 layers) of the architectures labeldiag treats as first-class.

Token ids follow labeldiag.synthetic.build_tokenizer: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4;
decoders use [CLS] as bos and [SEP] as eos so that every special id is inside the vocabulary.
"""
from __future__ import annotations

from typing import Any

PAD, CLS, SEP = 0, 2, 3
DECODERS = ("llama", "qwen2", "mistral", "gemma", "gpt2")
ENCODERS = ("deberta-v2", "modernbert", "electra", "xlm-roberta", "mpnet")


def _labels(labels: list[str]) -> dict:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}}


def tiny_config(arch: str, vocab_size: int, labels: list[str], pad: int | None = PAD) -> Any:
    import transformers as tf

    common = {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 128, **_labels(labels)}
    decoder = {"num_key_value_heads": 2, "pad_token_id": pad, "bos_token_id": CLS, "eos_token_id": SEP}
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                             pad_token_id=pad, bos_token_id=CLS, eos_token_id=SEP, **_labels(labels))
    if arch == "gemma":
        return tf.GemmaConfig(head_dim=16, **common, **decoder)
    if arch in ("llama", "qwen2", "mistral"):
        cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "mistral": tf.MistralConfig}[arch]
        return cls(**common, **decoder)
    if arch == "modernbert":
        return tf.ModernBertConfig(pad_token_id=PAD, bos_token_id=CLS, eos_token_id=SEP, cls_token_id=CLS,
                                   sep_token_id=SEP, global_attn_every_n_layers=1, local_attention=16, **common)
    if arch == "electra":
        return tf.ElectraConfig(embedding_size=32, pad_token_id=PAD, **common)
    cls = {"deberta-v2": tf.DebertaV2Config, "xlm-roberta": tf.XLMRobertaConfig, "mpnet": tf.MPNetConfig}[arch]
    return cls(pad_token_id=PAD, **common)


def tiny_classifier(arch: str, vocab_size: int, labels: list[str], seed: int = 0, pad: int | None = PAD) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(tiny_config(arch, vocab_size, labels, pad))


def tiny_pretrained(arch: str, vocab_size: int, labels: list[str], seed: int = 0) -> Any:
    """The pretraining model a classifier starts from (masked LM, causal LM or ELECTRA discriminator)."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    config = tiny_config(arch, vocab_size, labels)
    if arch in DECODERS:
        return tf.AutoModelForCausalLM.from_config(config)
    if arch == "electra":
        return tf.ElectraForPreTraining(config)
    return tf.AutoModelForMaskedLM.from_config(config)
