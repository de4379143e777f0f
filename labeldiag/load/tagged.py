"""Token classification data (issue 22): rows of word lists with one tag per word, as CoNLL-style datasets
store them ({"tokens": [...], "ner_tags": [...]}), tag names or indices."""
from __future__ import annotations

from labeldiag.errors import UsageError, one_line
from labeldiag.records import Examples

TAG_FIELDS = ("ner_tags", "tags", "labels", "label", "pos_tags", "chunk_tags", "ner")


def tagged_words(path: str, taken: list[dict], columns: list[str], words_field: str,
                 label_field: str | None) -> Examples:
    if label_field is not None and label_field not in columns:
        raise UsageError(f"--label-field '{label_field}' is not a column of DATA '{path}' (columns found: "
                         f"{', '.join(columns)})")
    tag_field = label_field or next((c for c in TAG_FIELDS if c in columns and c != words_field), None)
    words, labels = [], [] if tag_field else None
    for i, row in enumerate(taken):
        sentence = row.get(words_field)
        if not isinstance(sentence, (list, tuple)) or not all(isinstance(w, str) for w in sentence):
            raise UsageError(f"example {i} in DATA '{path}': '{words_field}' must be a list of words, got "
                             f"{one_line(repr(sentence), 40)}")
        if not sentence:
            raise UsageError(f"example {i} in DATA '{path}' has no words; drop empty sentences")
        words.append([str(w) for w in sentence])
        if tag_field:
            tags = row.get(tag_field)
            if not isinstance(tags, (list, tuple)) or len(tags) != len(sentence):
                got = f"{len(tags)} tags" if isinstance(tags, (list, tuple)) else one_line(repr(tags), 30)
                raise UsageError(f"example {i} in DATA '{path}' has {len(sentence)} words but {got} in "
                                 f"'{tag_field}'; give one tag per word")
            labels.append(list(tags))
    return Examples(path=path, columns=columns, texts=[" ".join(w) for w in words], labels=labels,
                    text_field=words_field, label_field=tag_field, words=words, token_level=True)
