"""The published weights, and what they change in the chapters: writes benchmarks/weights.md.

    python benchmarks/weights.py

For every record in weights/manifest.json (the `smoke` test weights left out): how long it
was trained (steps, passes over the data, wall time, sessions) and the held-out metrics the
pretraining run recorded. Then, per model, the chapter's own yardstick for the short run it
trains on the page ("before") and for the published weights ("after"), with the floor where
the yardstick has one: read from the committed execution cache (the numbers the book shows),
so they change only when a chapter is re-executed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))
import book  # noqa: E402
import gdl.weights  # noqa: E402

# model -> (chapter, yardstick, glue key before, glue key after, glue key of the floor or None)
YARDSTICKS = {
    "dcgan_bricks": ("ch04", "brick distance (Fréchet, brick classifier; lower is better)",
                     "dc_distance", "long_distance", "brick_floor"),
    "gpt_wine": ("ch09", "validation perplexity (lower is better)",
                 "gpt_ppl", "writer_ppl", None),
    "diffusion_flowers": ("ch08", "flower distance after 20 DDIM steps (Fréchet, flower "
                          "classifier; lower is better)", "fd_steps_a", "long_fd", "fd_floor"),
    "vae_fashion": ("ch03", "test-set negative ELBO, nats per image (floor: a perfect "
                    "reconstruction's cross-entropy)", "vae_nelbo", "long_nelbo", "floor_fashion"),
    "vae_faces": ("ch03", "held-out faces' negative ELBO, nats per face (floor: a perfect "
                  "reconstruction's cross-entropy)", "face_nelbo", "long_face_nelbo",
                  "floor_faces"),
    "pixelcnn_levels": ("ch05", "Fréchet distance, 4-level samples, in the chapter's "
                        "classifier features (lower is better)", "fd_pixel_page",
                        "fd_pixel_long", "fd_floor4"),
    "pixelcnn_mixture": ("ch05", "Fréchet distance, 256-level samples, in the chapter's "
                         "classifier features (lower is better)", "fd_mixture",
                         "fd_mixture_long", "fd_floor"),
    "lstm_wine": ("ch05", "validation perplexity (lower is better)", "lm_page_ppl",
                  "lm_long_ppl", None),
    "ebm_digits": ("ch07", "Fréchet distance of buffer samples, digit classifier's features "
                   "(lower is better)", "fd_buffer", "fd_long_buffer", "fd_real"),
    "wgan_faces": ("ch04", "face distance (Fréchet, face classifier; lower is better)",
                   "w_distance", "long_w_distance", "face_floor"),
    "cgan_blond": ("ch04", "face distance of the conditional samples, both labels (as above)",
                   "c_distance", "long_c_distance", "face_floor"),
    "stylegan_faces": ("ch10", "face distance (Fréchet, chapter 10's face classifier; lower "
                       "is better)", "sg_distance", "long_sg_distance", "face_floor"),
    "musegan_chorales": ("ch11", "qualified notes, the share of notes at least 3 sixteenths "
                         "long (last column: the real test chorales; closer is better)",
                         "qn_page", "qn_long", "qn_real"),
    "world_vae": ("ch12", "V's negative ELBO on frames of the evaluation tracks, nats per frame "
                  "(lower is better)", "v_short", "v_long", None),
    "world_mdn_rnn": ("ch12", "M's NLL of the next code on the evaluation tracks, nats per "
                      "dimension (lower is better)", "m_short", "m_long", None),
    # chapter 13 measures its long-trained models only (the short runs show the loop)
    "clip_faces": ("ch13", "text-to-face recall@5 among the test faces (higher is better)",
                   None, "r5", None),
    "unclip_faces": ("ch13", "face distance of the decoder's samples from the test faces' "
                     "CLIP embeddings (lower is better)",
                     None, "pix_dist", None),
    "latent_faces": ("ch13", "the same for latent diffusion (lower is better)",
                     None, "ldm_dist", None),
    "flamingo_faces": ("ch13", "captioner's mean balanced accuracy over 11 attributes "
                       "(higher is better; before: the language model alone)",
                       "cap_blind", "cap_long", None),
}


# What the manifest records do not say (runs made before pretrain.py recorded its thread count).
NOTES = {
    "dcgan_bricks": "its second session (8,305 of the steps, 2026-12-04) ran on one thread "
                    "(TF_NUM_INTRAOP_THREADS=1, nice 19) while diffusion_flowers trained on the "
                    "other core and chapters executed beside them",
    "diffusion_flowers": "one thread (TF_NUM_INTRAOP_THREADS=1, nice 19), beside dcgan_bricks "
                         "and chapter executions",
}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def _number(text: str | None) -> str:
    if text is None:
        return "–"
    try:
        return f"{float(text):.3g}"
    except ValueError:
        return text


def _machines(record: dict) -> str | None:
    """Steps and time per machine, when more than one kind trained the weights (else None)."""
    split: dict[str, list[float]] = {}
    for session in record.get("sessions", []):
        parts = [p.strip() for p in session.get("run_info", "").split("·")]
        machine = next((p for p in parts if p.startswith(("CPU:", "GPU:"))), "unknown machine")
        backend = next((p for p in parts if p.startswith("backend=")), "")
        key = f"{gdl.weights._machine(machine)} ({backend.removeprefix('backend=')})"
        steps, seconds = split.setdefault(key, [0, 0.0])
        split[key] = [steps + session.get("steps", 0), seconds + session.get("wall_seconds", 0.0)]
    if len(split) < 2:
        return None
    return "; ".join(f"{k}: {int(v[0]):,} steps in {_hours(v[1])}" for k, v in split.items())


def report() -> str:
    records = json.loads((ROOT / "weights" / "manifest.json").read_text())
    published = {k: r for k, r in sorted(records.items()) if r.get("profile") != "smoke"}
    lines = ["# Published weights", "",
             "Written by `python benchmarks/weights.py` from `weights/manifest.json` and the "
             "committed execution cache.", "",
             "| weights | steps | examples seen | wall time | sessions | recorded metrics |",
             "|---|---:|---:|---:|---:|---|"]
    for name, r in published.items():
        passes = ""
        per_pass = r["training"].get("training_images") or r["training"].get("training_reviews")
        if per_pass:
            passes = f" ({r['examples_seen'] / per_pass:.0f} passes)"
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in r.get("metrics", {}).items())
        lines.append(f"| `{name}` | {r['steps']:,} | {r['examples_seen']:,} {r['unit']}{passes} | "
                     f"{_hours(r['wall_seconds'])} | {len(r.get('sessions', [])) or 1} | {metrics} |")
    lines += [""] + [f"- `{name}`: {note}." for name, note in NOTES.items() if name in published]
    lines += [f"- `{name}`, by machine: {split}." for name, r in published.items()
              if (split := _machines(r))]
    lines += ["", "Each run's machine line and exact command are in its manifest record.", "",
              "## Before and after, in the chapters", "",
              "| weights | chapter | yardstick | trained on the page | published weights | floor |",
              "|---|---|---|---:|---:|---:|"]
    for name, (chapter, what, before, after, floor) in YARDSTICKS.items():
        if name not in published:
            continue
        try:
            glued = book.cached_glue(chapter)
        except KeyError:
            glued = {}
        lines.append(f"| `{name}` | {chapter} | {what} | {_number(glued.get(before))} | "
                     f"{_number(glued.get(after))} | {_number(glued.get(floor)) if floor else '–'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    text = report()
    (HERE / "weights.md").write_text(text)
    print(text)
