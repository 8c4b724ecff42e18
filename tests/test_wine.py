"""gdl.data.wine: the packaged copy of chapter 5's corpus must stay chapter 5's corpus."""
import re
from pathlib import Path

import numpy as np

from gdl.data.wine import review_text, wine_corpus

CH05 = Path(__file__).resolve().parents[1] / "book" / "ch05_autoregressive.md"


def chapter5_review_text():
    """`review_text` as chapter 5 defines it in the page (its cell, executed here)."""
    source = CH05.read_text()
    start = source.index("PUNCTUATION = re.compile")
    end = source.index("texts = [review_text(r)", start)
    scope = {"re": re}
    exec(source[start:end], scope)
    return scope["review_text"]


def test_review_text_is_chapter_5s(shared_data):
    theirs = chapter5_review_text()
    corpus = wine_corpus()
    for i in range(0, len(corpus.records), 997):
        assert review_text(corpus.records[i]) == theirs(corpus.records[i])
    text = review_text({"variety": "Pinot Noir", "province": "Oregon", "country": "US",
                        "description": "Tart, (bright) fruit."})
    assert text == "pinot noir from oregon , us : tart , ( bright ) fruit . <end>"


def test_split_is_chapter_5s(shared_data):
    corpus = wine_corpus()
    n = len(corpus.records)
    assert n == len({r["description"] for r in corpus.records}) == len(corpus.texts)
    # chapter 5: rng = default_rng(42) and its first draw is the permutation
    order = np.random.default_rng(42).permutation(n)
    assert list(corpus.val_rows) == list(order[:int(0.1 * n)])
    assert set(corpus.train_rows).isdisjoint(corpus.val_rows)
    assert len(corpus.train_rows) + len(corpus.val_rows) == n
    small = wine_corpus(n_reviews=300)
    assert (len(small.train_rows), len(small.val_rows)) == (270, 30)


def test_vectorizer_reserves_padding_and_unknown(shared_data):
    corpus = wine_corpus(n_reviews=300)
    vectorize = corpus.vectorizer(vocab_size=200, length=12)
    vocab = vectorize.get_vocabulary()
    assert vocab[:2] == ["", "[UNK]"] and len(vocab) == 200
    ids = np.asarray(vectorize(["zzzunseen word <end>"]))
    assert ids.shape == (1, 12) and ids[0, 0] == 1 and ids[0, -1] == 0
