"""Chapter 5's wine-review corpus (§5.2), packaged: the same text, split and vocabulary for
chapter 9 and `scripts/pretrain.py`, so their numbers compare with chapter 5's LSTM.

Chapter 5 writes these steps out in the page, where they are taught; this module is the
reusable copy. `tests/test_wine.py` checks that it keeps chapter 5's format and split.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import numpy as np

from gdl.data.text import wine_reviews

PUNCTUATION = re.compile(r"([!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
SPLIT_SEED = 42          # chapter 5's generator: its first draw is this permutation


def review_text(record: dict) -> str:
    """'pinot noir from oregon , us : tart and ... . <end>': lower case, punctuation split off."""
    text = f"{record['variety']} from {record['province']}, {record['country']}: "
    text = PUNCTUATION.sub(r" \1 ", (text + record["description"]).lower())
    return " ".join(text.split()) + " <end>"


@dataclass
class WineCorpus:
    """Distinct reviews as text, and chapter 5's split of them (row numbers into `texts`)."""

    records: list[dict]      # one per distinct description
    texts: list[str]         # review_text of each record
    train_rows: np.ndarray
    val_rows: np.ndarray

    @property
    def train_texts(self) -> list[str]:
        return [self.texts[i] for i in self.train_rows]

    @property
    def val_texts(self) -> list[str]:
        return [self.texts[i] for i in self.val_rows]

    def vectorizer(self, vocab_size: int, length: int) -> keras.layers.TextVectorization:
        """Chapter 5's tokenizer: the vocab_size - 2 commonest training words, [UNK] = 1,
        padding = 0; each review becomes `length` ids."""
        vectorize = keras.layers.TextVectorization(
            max_tokens=vocab_size, standardize=None, split="whitespace",
            output_sequence_length=length)
        vectorize.adapt(self.train_texts)
        return vectorize


def wine_corpus(n_reviews: int | None = None, val_fraction: float = 0.1) -> WineCorpus:
    """The distinct complete reviews, shuffled with seed 42; the first `val_fraction` of the
    (first `n_reviews`) shuffled rows are validation, the rest training."""
    records = list({r["description"]: r for r in wine_reviews()}.values())
    order = np.random.default_rng(SPLIT_SEED).permutation(len(records))[:n_reviews]
    n_val = int(val_fraction * len(order))
    return WineCorpus(records, [review_text(r) for r in records], order[n_val:], order[:n_val])
