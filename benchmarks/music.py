"""Chapter 11's models: training speed at the chapter's `cpu` settings against the curriculum's
published settings, timed side by side in one process, and the chapter's numbers as cached.

    python benchmarks/music.py throughput  # -> music.md
    python benchmarks/music.py metrics     # -> music_metrics.md

`throughput` alternates rounds of a few training steps of each pair (absolute times on this
shared machine move by 2-5x from minute to minute, DESIGN §10), on random token ids / random
piano rolls of the real shapes:

1. the two-headed music transformer (`gdl.models.music`) at the curriculum's settings
   (length 50, embedding 256 = 128 + 128, 5 heads of key size 256, feed-forward 256, one
   block, dropout 0.3, batch 256; Foster 2023, ch. 11) and at chapter 11's `cpu` settings
   (embedding 128, 4 heads of 32, feed-forward 256, 2 blocks, dropout 0.2, batch 64);
2. MuseGAN (`gdl.models.musegan`) at the curriculum's widths (generator 1024/1024/(512, 256,
   256)/256, critic 128x6, 256, 512 and 1024 units; z 32, batch 64, 5 critic steps) and at
   the chapter's `cpu` widths (all halved), one generator step = 5 critic steps each.

The report gives the median time per step of each, events (or 2-bar windows) per second, and
the median ratio published / chapter.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent

from common import machine, write_cached_metrics  # noqa: E402  (benchmarks/ is on sys.path)

NOTES, DURATIONS, LENGTH = 340, 33, 50          # chapter 11's vocabularies (training movements)
TRANSFORMERS = {
    "published": dict(embed_dim=256, heads=5, key_dim=256, ff_dim=256, blocks=1, dropout=0.3,
                      batch=256),
    "chapter cpu": dict(embed_dim=128, heads=4, key_dim=32, ff_dim=256, blocks=2, dropout=0.2,
                        batch=64),
}
MUSEGANS = {
    "published": dict(generator=dict(temporal_filters=1024, units=1024,
                                     time_filters=(512, 256, 256), pitch_filters=256),
                      critic=dict(filters=(128,) * 6 + (256, 512), units=1024)),
    "chapter cpu": dict(generator=dict(temporal_filters=512, units=512,
                                       time_filters=(256, 128, 128), pitch_filters=128),
                        critic=dict(filters=(64,) * 6 + (128, 256), units=512)),
}
BATCH, CRITIC_STEPS, Z = 64, 5, 32


def transformer_step(settings, rng):
    """A compiled model and a function running `n` training steps on random ids."""
    from gdl.models import music

    s = dict(settings)
    batch = s.pop("batch")
    model = music.build_music_transformer(NOTES, DURATIONS, max_len=LENGTH, seed=0, **s)
    music.compile_music_transformer(model)
    notes = rng.integers(2, NOTES, (batch, LENGTH + 1)).astype("int32")
    durations = rng.integers(2, DURATIONS, (batch, LENGTH + 1)).astype("int32")
    x, y = music.training_pairs(notes, durations)
    model.train_on_batch(x, y)                                  # compile
    return (lambda n: [model.train_on_batch(x, y) for _ in range(n)]), batch * LENGTH


def musegan_step(settings, rng):
    import keras

    from gdl.models import musegan as mg

    keras.utils.set_random_seed(0)
    gan = mg.MuseGAN(mg.build_musegan_generator(z_dim=Z, **settings["generator"]),
                     mg.build_musegan_critic(**settings["critic"]), latent_dim=Z,
                     critic_steps=CRITIC_STEPS)
    adam = lambda: keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9)  # noqa: E731
    gan.compile(discriminator_optimizer=adam(), generator_optimizer=adam())
    pitches = rng.integers(36, 82, (BATCH * CRITIC_STEPS, 32, 4))
    rolls = mg.pitches_to_rolls(pitches)
    gan.train_on_batch(rolls)                                   # compile
    return (lambda n: [gan.train_on_batch(rolls) for _ in range(n)]), BATCH * CRITIC_STEPS


def alternate(runs: dict, rounds: int, steps: int) -> dict:
    """Median seconds per step of each run, timed in alternating rounds."""
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for name, (run, _) in runs.items():
            start = time.perf_counter()
            run(steps)
            times[name].append((time.perf_counter() - start) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def throughput(rounds: int) -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    lines = [f"# Chapter 11: training speed, published settings vs the chapter's `cpu` settings",
             "", f"Measured {dt.date.today()} on {machine()} with "
             f"`python benchmarks/music.py throughput` ({rounds} alternating rounds; medians).", ""]
    t_runs = {k: transformer_step(v, rng) for k, v in TRANSFORMERS.items()}
    t = alternate(t_runs, rounds, steps=4)
    lines += ["## Two-headed music transformer (one step = one batch of windows of 50 events)", "",
              "| settings | s / step | events / s |", "| --- | ---: | ---: |"]
    lines += [f"| {k} (batch {TRANSFORMERS[k]['batch']}) | {t[k]:.3f} | {t_runs[k][1] / t[k]:,.0f} |"
              for k in t]
    lines += ["", f"Step time ratio published / chapter: **{t['published'] / t['chapter cpu']:.1f}x** "
              f"(per event: {(t['published'] / t_runs['published'][1]) / (t['chapter cpu'] / t_runs['chapter cpu'][1]):.2f}x).", ""]
    m_runs = {k: musegan_step(v, rng) for k, v in MUSEGANS.items()}
    m = alternate(m_runs, rounds, steps=1)
    lines += ["## MuseGAN (one step = 5 critic updates on 64 windows each + 1 generator update)", "",
              "| widths | s / step | 2-bar windows / s |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {m[k]:.2f} | {m_runs[k][1] / m[k]:,.0f} |" for k in m]
    lines += ["", f"Step time ratio published / chapter: **{m['published'] / m['chapter cpu']:.1f}x**.", ""]
    report = "\n".join(lines)
    (HERE / "music.md").write_text(report)
    print(report)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["throughput", "metrics"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.what == "throughput":
        throughput(args.rounds)
    else:
        write_cached_metrics("ch11_music", ("perplexity", "qualified notes", "generator steps",
                                            "epochs in", "chapter ran in"), "music",
                             "Chapter 11 (music): the numbers of the cached `cpu` run")


if __name__ == "__main__":
    main()
