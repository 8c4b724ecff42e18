"""Captions for CelebA faces (chapter 13): a template that writes every one of the 40
attributes as words, a parser that reads them back, and a fixed word-level tokenizer.

A caption is ``[a | a photo of a | a blurry photo of a] <adjectives> <noun> [with <features>]
[wearing <accessories>]``, e.g. "a photo of a smiling young woman with blond hair, bangs and
eyeglasses wearing earrings". `Male` picks the noun (man / woman; "person" when a partial
caption leaves it out), `No_Beard` = -1 is written "a beard", `Blurry` changes the prefix, and
every other attribute present is one phrase. Each attribute has several phrasings, drawn at
random, and the features come in random order, so a text encoder must learn the meaning rather
than the string.

With `mention=1` the caption names every attribute present and the noun's gender, so
`parse(caption(a)) == a` for every attribute vector `a` (the round trip the tests check); with
`mention < 1` each attribute present is named with that probability (as alt-text names some of
what a picture shows, never all), and absence means "not said", not "absent".
"""
from __future__ import annotations

import numpy as np

from gdl.paths import DataError

# attribute -> its phrasings (the first is the canonical one); the order is CelebA's.
ADJECTIVES = {
    "Attractive": ["attractive", "good-looking"],
    "Bald": ["bald"],
    "Chubby": ["chubby", "plump"],
    "Pale_Skin": ["pale", "pale-skinned"],
    "Smiling": ["smiling", "grinning"],
    "Young": ["young", "youthful"],
}
FEATURES = {
    "5_o_Clock_Shadow": ["stubble", "a five o'clock shadow"],
    "Arched_Eyebrows": ["arched eyebrows", "arched brows"],
    "Bags_Under_Eyes": ["bags under the eyes", "tired eyes"],
    "Bangs": ["bangs", "a fringe"],
    "Big_Lips": ["big lips", "full lips"],
    "Big_Nose": ["a big nose", "a large nose"],
    "Black_Hair": ["black hair", "dark hair"],
    "Blond_Hair": ["blond hair", "blonde hair", "fair hair"],
    "Brown_Hair": ["brown hair", "brunette hair"],
    "Bushy_Eyebrows": ["bushy eyebrows", "thick eyebrows"],
    "Double_Chin": ["a double chin"],
    "Eyeglasses": ["eyeglasses", "glasses", "spectacles"],
    "Goatee": ["a goatee"],
    "Gray_Hair": ["gray hair", "grey hair", "silver hair"],
    "Heavy_Makeup": ["heavy makeup", "a lot of makeup"],
    "High_Cheekbones": ["high cheekbones"],
    "Mouth_Slightly_Open": ["an open mouth", "parted lips"],
    "Mustache": ["a mustache", "a moustache"],
    "Narrow_Eyes": ["narrow eyes", "squinting eyes"],
    "No_Beard": ["a beard", "a full beard"],          # written when No_Beard is -1
    "Oval_Face": ["an oval face"],
    "Pointy_Nose": ["a pointy nose", "a pointed nose"],
    "Receding_Hairline": ["a receding hairline"],
    "Rosy_Cheeks": ["rosy cheeks", "flushed cheeks"],
    "Sideburns": ["sideburns"],
    "Straight_Hair": ["straight hair"],
    "Wavy_Hair": ["wavy hair"],
}
ACCESSORIES = {
    "Wearing_Earrings": ["earrings"],
    "Wearing_Hat": ["a hat", "a cap"],
    "Wearing_Lipstick": ["lipstick", "red lipstick"],
    "Wearing_Necklace": ["a necklace"],
    "Wearing_Necktie": ["a tie", "a necktie"],
}
NOUNS = {"man": ["man", "guy", "gentleman"], "woman": ["woman", "lady"], "person": ["person"]}
PREFIXES = {"plain": ["a", "a photo of a", "a picture of a"],
            "blurry": ["a blurry photo of a", "a blurry picture of a"]}

#: CelebA's 40 attribute names, in the order of its table
ATTRIBUTES = ("5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
              "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry",
              "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee",
              "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
              "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
              "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
              "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
              "Wearing_Necklace", "Wearing_Necktie", "Young")
INVERTED = {"No_Beard"}            # attributes whose phrase says the opposite of their name

PAD, START, END = "<pad>", "<start>", "<end>"
_GLUE = ["with", "wearing", "and", ","]


def _words(text: str) -> list[str]:
    return text.replace(",", " , ").split()


def _phrase_table() -> list[tuple[tuple[str, ...], str]]:
    """(words of a phrasing, attribute) for every phrasing, longest first (for greedy parsing)."""
    rows = [(tuple(_words(p)), name) for table in (ADJECTIVES, FEATURES, ACCESSORIES)
            for name, phrasings in table.items() for p in phrasings]
    return sorted(rows, key=lambda row: -len(row[0]))


_PHRASES = _phrase_table()


def vocabulary() -> list[str]:
    """The fixed word list: padding, start, end, then every word the template can write."""
    words = set(_GLUE) | {"an"}
    for table in (ADJECTIVES, FEATURES, ACCESSORIES, NOUNS, PREFIXES):
        for phrasings in table.values():
            for p in phrasings:
                words.update(_words(p))
    return [PAD, START, END] + sorted(words)


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption(attributes, rng: np.random.Generator | None = None, mention: float = 1.0,
            names=ATTRIBUTES) -> str:
    """One caption for one face: `attributes` is 40 values (0/1, -1/1 or booleans) in
    `names` order."""
    rng = rng or np.random.default_rng(0)
    values = np.asarray(attributes).reshape(-1)
    if len(values) != len(names):
        raise ValueError(f"need {len(names)} attribute values, got {len(values)}")
    present = {n for n, v in zip(names, values) if (v > 0) != (n in INVERTED)}

    def said(name):
        return name in present and rng.random() < mention

    def pick(options):
        return options[rng.integers(len(options))]

    adjectives = [pick(ADJECTIVES[n]) for n in ADJECTIVES if said(n)]
    features = [pick(FEATURES[n]) for n in FEATURES if said(n)]
    accessories = [pick(ACCESSORIES[n]) for n in ACCESSORIES if said(n)]
    rng.shuffle(features)
    rng.shuffle(accessories)
    gender = "man" if "Male" in present else "woman"
    noun = pick(NOUNS[gender]) if mention >= 1 or rng.random() < mention else "person"
    prefix = pick(PREFIXES["blurry" if said("Blurry") else "plain"])
    words = prefix.split() + adjectives + [noun]
    article = len(prefix.split()) - 1              # the prefix ends with its article
    if words[article + 1][0] in "aeiou":
        words[article] = "an"
    parts = [" ".join(words)]
    if features:
        parts.append("with " + _join(features))
    if accessories:
        parts.append("wearing " + _join(accessories))
    return " ".join(parts)


def parse(text: str, names=ATTRIBUTES) -> np.ndarray:
    """The attributes a caption states, as 0/1 in `names` order (the inverse of `caption`).

    Unsaid attributes read as 0 (and No_Beard as 1); a gender-neutral noun leaves Male at 0.
    """
    words = _words(text)
    present = set()
    i = 0
    while i < len(words):
        for phrase, name in _PHRASES:
            if tuple(words[i:i + len(phrase)]) == phrase:
                present.add(name)
                i += len(phrase)
                break
        else:
            if words[i] in NOUNS["man"]:
                present.add("Male")
            elif words[i] == "blurry":
                present.add("Blurry")
            i += 1
    return np.array([float((n in present) != (n in INVERTED)) for n in names], "float32")


class CaptionTokenizer:
    """Word-level ids over the fixed `vocabulary()`: <start> words <end>, padded with 0."""

    def __init__(self, max_len: int = 64):
        self.words = vocabulary()
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_len = max_len
        self.pad_id, self.start_id, self.end_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, texts) -> np.ndarray:
        """Captions -> (N, max_len) int32 ids; an unknown word or an overlong caption is an error."""
        ids = np.zeros((len(texts), self.max_len), "int32")
        for row, text in enumerate(texts):
            words = _words(text)
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise DataError(f"{unknown[0]!r} is not a caption word; prompts use the words of "
                                f"gdl.data.captions.vocabulary() (e.g. {', '.join(self.words[3:9])})")
            if len(words) + 2 > self.max_len:
                raise ValueError(f"caption of {len(words)} words does not fit max_len="
                                 f"{self.max_len} with its start and end: {text!r}")
            ids[row, :len(words) + 2] = [self.start_id, *(self.index[w] for w in words),
                                         self.end_id]
        return ids

    def decode(self, ids) -> list[str]:
        """(N, T) ids -> captions, stopping at <end> (start and padding dropped)."""
        texts = []
        for row in np.asarray(ids):
            words = []
            for i in row:
                if i == self.end_id:
                    break
                if i not in (self.pad_id, self.start_id):
                    words.append(self.words[int(i)])
            texts.append(" ".join(words).replace(" ,", ","))
        return texts


# --------------------------------------------------------------------------- the chapter's data
#: a pair of attributes that never appears together in the training split, so that a prompt
#: asking for both tests whether a model composes what it learned apart
HELD_OUT_COMBINATION = ("Blond_Hair", "Eyeglasses")


def split(attributes, test_fraction: float = 0.1, combination=HELD_OUT_COMBINATION,
          names=ATTRIBUTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (train, test, unseen): the last `test_fraction` of the faces is the test
    split; the other faces that show every attribute of `combination` are set aside (unseen)."""
    values = np.asarray(attributes)
    n_test = int(len(values) * test_fraction)
    rest = np.arange(len(values) - n_test)
    cols = [names.index(c) for c in combination]
    both = (values[rest][:, cols] > 0).all(axis=1)
    return rest[~both], np.arange(len(values) - n_test, len(values)), rest[both]


def caption_ids(attributes, tokenizer: CaptionTokenizer, variants: int = 4,
                mention: float = 1.0, seed: int = 0) -> np.ndarray:
    """`variants` captions of every face, tokenized: (variants, N, max_len) int32."""
    rng = np.random.default_rng(seed)
    return np.stack([tokenizer.encode([caption(a, rng, mention) for a in attributes])
                     for _ in range(variants)])
