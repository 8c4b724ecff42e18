"""Chapter 13's costs on this machine: sampling a face in pixel space and in the face VAE's latent
space, what classifier-free guidance adds to a step, and CLIP's training rate.

    python benchmarks/multimodal.py speed     # -> multimodal.md
    python benchmarks/multimodal.py metrics   # -> multimodal_metrics.md (the chapter's numbers)

`speed` loads the published weights (clip_faces, unclip_faces, vae_faces, latent_faces; the
profile's) and alternates rounds (absolute times on this shared machine move by 2-5x from minute
to minute) of:

1. 64 faces from 20 DDIM steps at guidance 3, by the pixel-space decoder and by latent diffusion
   (the latent denoiser's 20 steps, then the VAE decoder once): milliseconds per face;
2. one noise prediction for a batch of 64 by the conditional U-Net alone, and with guidance (the
   conditioned and the null batch in one call of twice the size);
3. 20 CLIP training steps of batch 128 (faces and captions): pairs per second.

The report gives medians over the rounds and the ratios taken within a round.
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

from common import machine, write_cached_metrics_and_glue  # noqa: E402  (benchmarks/ is on sys.path)

ROUNDS = 3
N, STEPS, GUIDANCE = 64, 20, 3.0


def _published():
    """The chapter's long-trained models, built from their records and loaded."""
    import keras
    import numpy as np

    import gdl.weights
    from gdl.models import multimodal as mm
    from gdl.models.vae import VAE, build_decoder, build_encoder

    def rec(name):
        return gdl.weights.record(gdl.weights.for_profile(name))

    clip_rec = rec("clip_faces")
    clip = mm.CLIP(mm.build_image_encoder(**clip_rec["settings"]["image"]),
                   mm.TextEncoder(**clip_rec["settings"]["text"]))
    clip([np.zeros((1, 32, 32, 3), "float32"), np.ones((1, 4), "int32")])
    gdl.weights.load(clip_rec["name"], clip)
    dec_rec = rec("unclip_faces")
    s = dec_rec["settings"]
    decoder = mm.GuidedDiffusion(mm.build_conditional_unet(**s["network"]), s["mean"], s["std"],
                                 drop_rate=s["drop_rate"])
    gdl.weights.load(dec_rec["name"], decoder)
    vae_rec = rec("vae_faces")
    vae = VAE(build_encoder(**vae_rec["settings"]["encoder"]),
              build_decoder(**vae_rec["settings"]["decoder"]))
    vae(np.zeros((1, 32, 32, 3), "float32"))
    gdl.weights.load(vae_rec["name"], vae)
    lat_rec = rec("latent_faces")
    s = lat_rec["settings"]
    latent = mm.GuidedDiffusion(mm.build_latent_denoiser(**s["network"]), s["mean"], s["std"],
                                drop_rate=s["drop_rate"], value_range=None)
    gdl.weights.load(lat_rec["name"], latent)
    clip.compile(optimizer=keras.optimizers.AdamW(5e-4))
    return clip, decoder, mm.LatentDiffusion(vae.encoder, vae.decoder, latent)


def speed() -> str:
    import numpy as np

    from gdl.data import captions

    clip, decoder, ldm = _published()
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(N, decoder.condition_dims)).astype("float32")
    cond /= np.linalg.norm(cond, axis=1, keepdims=True)
    x = rng.random((N, 32, 32, 3)).astype("float32")
    signal, noise = np.full((N, 1, 1, 1), 0.6, "float32"), np.full((N, 1, 1, 1), 0.8, "float32")
    tok = captions.CaptionTokenizer()
    faces = rng.random((128, 32, 32, 3)).astype("float32")
    ids = tok.encode([captions.caption(a, rng, 0.6) for a in (rng.random((128, 40)) < 0.2)])
    from gdl import backend

    net = decoder.ema_network
    # compiled like predict_noise, so that the two differ only in the batch they run
    plain = backend.compile(lambda x, v, c: net([x, v, c], training=False), variables=[net])
    plain(x, noise**2, cond)
    for warm in (decoder, ldm):   # compile both samplers before timing
        np.asarray(warm.generate(condition=cond[:2], guidance=GUIDANCE, seed=0, steps=2))
    decoder.predict_noise(x, signal, noise, condition=cond, guidance=GUIDANCE)
    clip.fit([faces, ids], batch_size=128, epochs=1, verbose=0)
    rows = {k: [] for k in ("pixel", "latent", "plain", "guided", "clip")}
    for r in range(ROUNDS):
        for name, model in (("pixel", decoder), ("latent", ldm)):
            start = time.perf_counter()
            np.asarray(model.generate(condition=cond, guidance=GUIDANCE, seed=r, steps=STEPS))
            rows[name].append((time.perf_counter() - start) / N)
        start = time.perf_counter()
        for _ in range(5):
            np.asarray(plain(x, noise**2, cond))
        rows["plain"].append((time.perf_counter() - start) / 5)
        start = time.perf_counter()
        for _ in range(5):
            np.asarray(decoder.predict_noise(x, signal, noise, condition=cond, guidance=GUIDANCE))
        rows["guided"].append((time.perf_counter() - start) / 5)
        start = time.perf_counter()
        clip.fit([np.tile(faces, (20, 1, 1, 1)), np.tile(ids, (20, 1))], batch_size=128,
                 epochs=1, verbose=0)
        rows["clip"].append(20 * 128 / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in rows.items()}
    pixel_over_latent = statistics.median(p / q for p, q in zip(rows["pixel"], rows["latent"]))
    guided_over_plain = statistics.median(g / p for g, p in zip(rows["guided"], rows["plain"]))
    report = f"""# Chapter 13: what sampling and training cost

`python benchmarks/multimodal.py speed` on {machine()}, {dt.date.today()}; medians of
{ROUNDS} alternating rounds, with the published `cpu` weights.

| what | cost |
| --- | --- |
| pixel-space decoder, {STEPS} DDIM steps at w = {GUIDANCE:g} | {1e3 * med['pixel']:.1f} ms per face |
| latent diffusion, {STEPS} steps at w = {GUIDANCE:g}, then the VAE decoder | {1e3 * med['latent']:.2f} ms per face |
| pixel / latent, per face | x{pixel_over_latent:.0f} |
| one U-Net noise prediction, batch {N}, no guidance (compiled) | {1e3 * med['plain']:.0f} ms |
| the same with guidance (conditioned + null batch) | {1e3 * med['guided']:.0f} ms (x{guided_over_plain:.2f}) |
| CLIP training, batch 128 | {med['clip']:.0f} pairs/s |

The ratios are taken within each round, so load on the machine affects both sides alike.
"""
    (HERE / "multimodal.md").write_text(report)
    print(report)
    return report


def metrics() -> str:
    """The chapter's printed lines, then the values its prose quotes."""
    return write_cached_metrics_and_glue(
        "ch13", ["Weights:", "steps in", "balanced accuracy", "faster", "captions for"],
        "multimodal", "Chapter 13: the numbers in the cached page")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["speed", "metrics"])
    {"speed": speed, "metrics": metrics}[parser.parse_args().what]()
