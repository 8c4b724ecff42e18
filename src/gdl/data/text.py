"""Text datasets: Kaggle wine reviews and Epicurious recipes, in their official layouts.

Both are JSON files holding one list of records (objects). The loaders check the
shape of what they read, so a truncated or unrelated file fails with a
:class:`DataError` that says what to fetch, instead of a puzzling error later.
"""
from __future__ import annotations

import json

from gdl.data.fetch import DataError, Source, data_dir, missing_message

WINE_REVIEWS = Source(
    name="Wine reviews",
    folder="wine-reviews",
    origin="https://www.kaggle.com/datasets/zynicide/wine-reviews",
    how=("The wine reviews have no direct download. With a Kaggle account: "
         "`kaggle datasets download -d zynicide/wine-reviews`, then unzip it into "
         "the folder below (it holds winemag-data-130k-v2.json and .csv)."),
)
WINE_REVIEWS_JSON = "winemag-data-130k-v2.json"

EPIRECIPES = Source(
    name="Epicurious recipes",
    folder="epirecipes",
    origin="https://www.kaggle.com/datasets/hugodarwood/epirecipes",
    how=("The Epicurious recipes have no direct download. With a Kaggle account: "
         "`kaggle datasets download -d hugodarwood/epirecipes`, then unzip it into "
         "the folder below (it holds full_format_recipes.json)."),
)
EPIRECIPES_JSON = "full_format_recipes.json"
RECIPE_KEYS = ("title", "ingredients", "directions")


def _read_records(source: Source, name: str) -> list[dict]:
    """The list of JSON objects in `source`'s file `name`, or a DataError saying why not."""
    path = data_dir() / source.folder / name
    if not path.exists():
        raise DataError(missing_message(source, name, "it has no direct download"))
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); it may be truncated. "
                        f"Download it again from {source.origin}.") from exc
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path} should hold a JSON list of records (objects); "
                        f"download it again from {source.origin}.")
    return records


def wine_reviews(complete: bool = True) -> list[dict]:
    """Kaggle `zynicide/wine-reviews` (`winemag-data-130k-v2.json`) as a list of records.

    Each record has the keys of the official file (`description`, `country`,
    `province`, `variety`, `points`, ...). With `complete=True`, records missing
    any of description, country, province or variety are left out.
    """
    path = data_dir() / WINE_REVIEWS.folder / WINE_REVIEWS_JSON
    records = _read_records(WINE_REVIEWS, WINE_REVIEWS_JSON)
    if not records or "description" not in records[0]:
        raise DataError(f"{path} does not hold wine reviews (no 'description' in its "
                        f"first record); download it again from {WINE_REVIEWS.origin}.")
    if complete:
        needed = ("description", "country", "province", "variety")
        records = [r for r in records if all(r.get(k) for k in needed)]
    return records


def epirecipes(complete: bool = True) -> list[dict]:
    """Kaggle `hugodarwood/epirecipes` (`full_format_recipes.json`) as a list of records.

    Each record has `title` (str), `ingredients` and `directions` (lists of str)
    among other keys. The official file holds a few empty records; with
    `complete=True`, records without a title, ingredients and directions are left out.
    """
    path = data_dir() / EPIRECIPES.folder / EPIRECIPES_JSON
    records = _read_records(EPIRECIPES, EPIRECIPES_JSON)
    if records and not any(all(k in r for k in RECIPE_KEYS) for r in records[:100]):
        raise DataError(f"{path} does not hold Epicurious recipes (no record with "
                        f"{', '.join(RECIPE_KEYS)}); download it again from {EPIRECIPES.origin}.")
    if complete:
        records = [r for r in records
                   if r.get("title") and isinstance(r.get("ingredients"), list)
                   and isinstance(r.get("directions"), list)
                   and r["ingredients"] and r["directions"]]
    return records
