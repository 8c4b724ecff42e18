"""Chapter 14's capstone table, as the book shows it: eight families, one dataset (Fashion-MNIST
at 32x32), ten minutes of this machine each.

    python scripts/pretrain.py capstone_<family>   # each family's 10-minute run -> weights/
    python scripts/book.py execute ch14            # samples and scores them (the chapter)
    python benchmarks/capstone.py                  # -> capstone.md, from the chapter's cache

The runs' records come from the weights manifest, the scores from the chapter's cached run
(its `capstone_table` glue), so this file always matches the page.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))

COLUMNS = [("chapter", "{:.0f}"), ("Fréchet distance", "{:.1f}"), ("precision", "{:.2f}"),
           ("recall", "{:.2f}"), ("bits/dim", "{:.2f}"), ("ms per image", "{:.2f}"),
           ("parameters", "{:,.0f}")]


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def main() -> str:
    import book
    import gdl.weights
    from gdl import capstone as cap

    glue = book.cached_glue("ch14")
    # the glued text keeps the JSON's escapes once more ("Fr\\u00e9chet"): undo them per key
    table = {row: {json.loads(f'"{k}"'): v for k, v in values.items()}
             for row, values in json.loads(glue["capstone_table"]).items()}
    lines = ["# Chapter 14's capstone", "",
             "Eight families on Fashion-MNIST padded to 32x32, each trained for the same "
             "wall-clock budget on this machine (2 CPU cores, `cpu` profile), scored by the "
             "chapter with one yardstick classifier. Reproduce with the commands at the top "
             "of `benchmarks/capstone.py`.", "",
             "## The runs (from `weights/manifest.json`)", "",
             "| family | budget (min) | steps by stage | images seen | overrun (s) | "
             "load average before / after |", "| --- | ---: | --- | ---: | ---: | --- |"]
    for name, family in cap.FAMILIES.items():
        rec = gdl.weights.record(cap.weights_name(name))
        steps = ", ".join(f"{k} {v:,}" for k, v in rec["training"]["steps_by_stage"].items())
        load = " / ".join(f"{v:.1f}" for v in rec.get("load_average", []))
        lines.append(f"| {family.label} | {rec['training']['budget_minutes']:g} | {steps} | "
                     f"{rec['examples_seen']:,} | {rec['metrics']['overrun_seconds']:.2f} | "
                     f"{load} |")
    lines += ["", f"Run info: {rec['run_info']}", "",
              "## The yardsticks (from the chapter's cached run)", "",
              "| | " + " | ".join(c for c, _ in COLUMNS) + " |",
              "| --- |" + " ---: |" * len(COLUMNS)]
    for row, values in table.items():
        lines.append(f"| {row} | " + " | ".join(_cell(values.get(c), f) for c, f in COLUMNS)
                     + " |")
    lines += ["", "Values the prose quotes (myst-nb glue):", "", "| key | value |",
              "| --- | --- |"]
    lines += [f"| `{k}` | {v} |" for k, v in sorted(glue.items())
              if k != "capstone_table" and v != "nan"]
    report = "\n".join(lines) + "\n"
    (HERE / "capstone.md").write_text(report)
    print(report)
    return report


if __name__ == "__main__":
    main()
