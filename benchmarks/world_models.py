"""Chapter 12's costs on this machine: real rollouts with one and with two worker processes, a
dreamed step against a real one, and the training throughput of V and M at the chapter's
settings.

    python benchmarks/world_models.py throughput   # -> world_models.md
    python benchmarks/world_models.py metrics      # -> world_models_metrics.md (the chapter's numbers)

`throughput` alternates rounds (absolute times on this shared machine move by 2-5x from minute to
minute, DESIGN §10) of:

1. random-policy rollouts of 4 episodes x 200 frames of CarRacing-v3 (64x64 frames, the data
   policy of `gdl.data.car_racing`), played by 1 and by 2 worker processes: frames per second;
2. one CMA-ES generation's worth of driving: 16 controllers for 100 steps through V and M, in the
   real environment (`world.RealTracks`, 8 processes) and in the dream (`world.dream`); the
   ratio of their times per controller-step;
3. training steps of V (batch 64 of 64x64x3 frames, the chapter's filters) and of M (batch 32 of
   64-step windows, 256 units, 5 mixtures): frames and sequence-steps per second.

The report gives medians over the rounds and the ratios taken within a round.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent

from common import machine, write_cached_metrics_and_glue  # noqa: E402  (benchmarks/ is on sys.path)

ROUNDS = 3
EPISODES, FRAMES = 4, 200
POP, DRIVE_STEPS = 16, 100


def rollout_rate(workers: int, seed: int) -> float:
    from gdl.data.car_racing import random_episode

    jobs = [(seed + i, FRAMES) for i in range(EPISODES)]
    start = time.perf_counter()
    if workers == 1:
        done = [random_episode(*job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            done = pool.starmap(random_episode, jobs)
    return sum(len(e["frames"]) for e in done) / (time.perf_counter() - start)


def throughput() -> str:
    import keras
    import numpy as np

    from gdl.models import world
    from gdl.models.vae import VAE, build_decoder, build_encoder

    keras.utils.set_random_seed(0)
    filters = (32, 64, 128, 256)
    vae = VAE(build_encoder((64, 64, 3), 32, filters=filters),
              build_decoder(32, (64, 64, 3), filters=filters[::-1]), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    m = world.build_mdn_rnn(32, 3, 256, 5)
    m.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss=world.MDNRNNLoss(32, 5))
    rng = np.random.default_rng(0)
    frames = rng.uniform(size=(64 * 4, 64, 64, 3)).astype("float32")
    seq_x = rng.normal(size=(32 * 4, 64, 35)).astype("float32")
    seq_y = rng.normal(size=(32 * 4, 64, 34)).astype("float32")
    vae.fit(frames[:64], batch_size=64, epochs=1, verbose=0)          # compile once
    m.fit(seq_x[:32], seq_y[:32], batch_size=32, epochs=1, verbose=0)
    wm = world.WorldModel.from_keras(m, 32, 5)
    wm.head_bias = wm.head_bias.copy()
    wm.head_bias[-1] = -50.0    # an untrained M ends half its dreams each step: time full dreams
    params = rng.normal(scale=0.1, size=(POP, world.controller_size(32, 256)))

    def see(obs):
        return np.asarray(vae.encoder.predict_on_batch(obs.astype("float32") / 255.0)[0])

    rows = {k: [] for k in ("one", "two", "real", "dream", "vae", "mdn")}
    with world.RealTracks(8, max_steps=DRIVE_STEPS) as tracks:
        tracks.drive(see, wm, params[:8], np.arange(8))               # warm the workers
        for r in range(ROUNDS):
            rows["one"].append(rollout_rate(1, 100 * r))
            rows["two"].append(rollout_rate(2, 100 * r))
            start = time.perf_counter()
            tracks.drive(see, wm, params, np.arange(POP) + 1000 * r)
            rows["real"].append((time.perf_counter() - start) / (POP * DRIVE_STEPS))
            start = time.perf_counter()
            world.dream(wm, params, rng.normal(size=(POP, 32)), DRIVE_STEPS, 1.15, seed=r)
            rows["dream"].append((time.perf_counter() - start) / (POP * DRIVE_STEPS))
            start = time.perf_counter()
            vae.fit(frames, batch_size=64, epochs=1, verbose=0)
            rows["vae"].append(len(frames) / (time.perf_counter() - start))
            start = time.perf_counter()
            m.fit(seq_x, seq_y, batch_size=32, epochs=1, verbose=0)
            rows["mdn"].append(seq_x.shape[0] * seq_x.shape[1] / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in rows.items()}
    two_over_one = statistics.median(t / o for t, o in zip(rows["two"], rows["one"]))
    real_over_dream = statistics.median(r / d for r, d in zip(rows["real"], rows["dream"]))
    report = f"""# Chapter 12: what driving, dreaming and training cost

`python benchmarks/world_models.py throughput` on {machine()}, {dt.date.today()}; medians of
{ROUNDS} alternating rounds.

| what | rate |
| --- | --- |
| random rollouts, 1 worker process | {med['one']:.0f} frames/s |
| random rollouts, 2 worker processes | {med['two']:.0f} frames/s (x{two_over_one:.2f}) |
| driving through V and M, real environment (8 processes) | {1e3 * med['real']:.2f} ms per controller-step |
| driving through V and M, in the dream (NumPy) | {1e3 * med['dream']:.3f} ms per controller-step |
| real / dream, per controller-step | x{real_over_dream:.0f} |
| V training (batch 64, 64x64x3) | {med['vae']:.0f} frames/s |
| M training (batch 32 x 64 steps, 256 units) | {med['mdn']:.0f} sequence-steps/s |

The ratios are taken within each round, so load on the machine affects both sides alike.
"""
    (HERE / "world_models.md").write_text(report)
    print(report)
    return report


def metrics() -> str:
    """The chapter's printed lines, then the values its prose quotes (returns on the
    evaluation tracks, mean ± sd; M's NLL; V's loss)."""
    return write_cached_metrics_and_glue(
        "ch12", ["episodes", "generations", "Weights:", "return"],
        "world_models", "Chapter 12: the numbers in the cached page")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["throughput", "metrics"])
    {"throughput": throughput, "metrics": metrics}[parser.parse_args().what]()
