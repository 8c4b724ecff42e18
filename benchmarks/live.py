"""Live models: size of each exported model and its time per generation in headless Chromium
(ONNX Runtime Web, one thread) next to Keras on the same machine; writes benchmarks/live.md.

    python benchmarks/live.py [--repeats 20] [--smoke] [NAME ...]

The two are timed alternately in one run (a browser call, then a Keras call, ...), each on the
same inputs, after a warm-up; the report gives medians and the median of the per-pair ratios.
A generation is 16 samples: one generator call for a GAN, DDIM_STEPS network calls for the
diffusion model; one image for a latent plane (what the page decodes per move of the point); for a language model (kind "text") the times are per token, the mean over
TEXT_TOKENS greedy tokens after a prompt (the page reads the whole text again for each token,
Keras' GPT.generate, as the chapter calls it, runs its compiled loop with the key/value cache);
for text to image (kind "guided-ddim") it is what chapter 13's view draws at first, T2I_FACES
faces in T2I_STEPS guided DDIM steps (two U-Net passes per step, in one call), the prompt's
condition computed once beforehand on both sides (the page keeps it while the prompt stays).
The Keras side runs eagerly with TensorFlow's default threads (both cores),
the way a chapter calls it. --smoke times the tiny smoke weights (a check of the script).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402

BATCH = 16
DDIM_STEPS = 10
TEXT_TOKENS = 20
TEXT_PROMPT = "pinot noir from oregon , us :"   # one of chapter 9's prompts
T2I_FACES, T2I_STEPS, T2I_GUIDANCE = 6, 20, 3.0       # chapter 13's live view, at first
T2I_PROMPT = "a smiling woman with blond hair"


def measure(name: str, weights: str, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    import gdl.live
    import gdl.weights
    from conftest import CHROMIUM, CHROMIUM_ARGS, live_site, serve
    from gdl.viz.live import live_diffusion, live_generator, live_writer
    from gdl.viz.live_plane import live_plane
    from gdl.viz.live_prompt import live_text_to_image

    live = gdl.live.LIVE_MODELS[name]
    record = gdl.weights.record(weights)
    model, part = live.build(record["settings"])
    gdl.weights.load(weights, model, record["settings"])
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        # exported here first (its description sets up the widget); live_site reuses the files
        meta = gdl.live.export_live(name, site / "_static" / "live", weights_name=weights)
        rng = np.random.default_rng(0)
        per = 1                                   # generations per timed call (text: tokens)
        if live.kind == "text":
            widget = live_writer(name, [TEXT_PROMPT], sample_text="")
            index = {word: i for i, word in enumerate(meta["vocabulary"])}
            prompt = [meta["start_id"]] + [index.get(w, 1) for w in TEXT_PROMPT.split()]
            n = per = min(TEXT_TOKENS, meta["max_len"] - len(prompt))
            x = np.array(prompt)
            timed_js = """async p => { const w = window.gdlLive.widgets[%r];
                const t = performance.now(); await w.greedy(p, %d, false);
                return (performance.now() - t) / %d; }""" % (name, n, n)

            def keras_call():
                np.asarray(model.generate(1, prompt=prompt, max_tokens=n, temperature=0))
        elif live.kind == "guided-ddim":
            shape = meta["image_shape"]
            widget = live_text_to_image(name, np.zeros((T2I_FACES, *shape)), [T2I_PROMPT],
                                        guidance=T2I_GUIDANCE, steps=T2I_STEPS)
            prompt_weights = gdl.live.LIVE_MODELS[meta["prompt_model"]].weights + (
                ".smoke" if weights.endswith(".smoke") else "")
            prompt_meta = gdl.live.export_live(meta["prompt_model"], site / "_static" / "live",
                                               weights_name=prompt_weights)
            prompt_model, encoder = gdl.live.LIVE_MODELS[meta["prompt_model"]].build(
                gdl.weights.record(prompt_weights)["settings"])
            gdl.weights.load(prompt_weights, prompt_model)
            from gdl.data.captions import CaptionTokenizer

            condition = np.repeat(np.asarray(encoder(CaptionTokenizer(
                prompt_meta["max_len"]).encode([T2I_PROMPT]))), T2I_FACES, axis=0)
            x = rng.normal(size=(T2I_FACES, *shape)).astype("float32")
            timed_js = """async x => { const w = window.gdlLive.widgets[%r];
                await w.condition(%r);
                const t = performance.now();
                await w.sample(new Float32Array(x), %d, %d, %r, %r);
                return performance.now() - t; }""" % (name, T2I_PROMPT, T2I_FACES, T2I_STEPS,
                                                      T2I_PROMPT, T2I_GUIDANCE)

            def keras_call():
                np.asarray(model.generate(condition=condition, guidance=T2I_GUIDANCE,
                                          initial_noise=x, steps=T2I_STEPS))
        elif live.kind == "ddim":
            shape = meta["image_shape"]
            widget = live_diffusion(name, np.zeros((BATCH, *shape)), steps=DDIM_STEPS)
            x = rng.normal(size=(BATCH, *shape)).astype("float32")
            timed_js = """async x => { const w = window.gdlLive.widgets[%r];
                const t = performance.now(); await w.sample(new Float32Array(x), %d, %d);
                return performance.now() - t; }""" % (name, BATCH, DDIM_STEPS)

            def keras_call():
                np.asarray(model.generate(initial_noise=x, steps=DDIM_STEPS))
        elif live.kind == "latent-plane":              # one image per move of the point
            widget = live_plane(name, np.zeros((4, *meta["output_shape"])), np.zeros((1, 2)),
                                [0], ["all"])
            x = rng.normal(size=(1, 2)).astype("float32")
            timed_js = """async z => { const w = window.gdlLive.widgets[%r];
                const t = performance.now(); await w.run(new Float32Array(z), 1);
                return performance.now() - t; }""" % name

            def keras_call():
                np.asarray(part(x, training=False))
        else:
            shape = meta["output_shape"]
            widget = live_generator(name, np.zeros((BATCH, *shape)))
            x = rng.normal(size=(BATCH, meta["input_size"])).astype("float32")
            # a conditional generator: the page's label slider starts at "yes", [0, 1]
            inputs = [x, np.tile([[0.0, 1.0]], (BATCH, 1)).astype("float32")] \
                if meta.get("label_size") else x
            timed_js = """async z => { const w = window.gdlLive.widgets[%r];
                const t = performance.now(); await w.run(new Float32Array(z), %d);
                return performance.now() - t; }""" % (name, BATCH)

            def keras_call():
                np.asarray(part(inputs, training=False))
        live_site(site, name, weights, widget.data)
        browser_ms, keras_ms = [], []
        with serve(site) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = browser.new_page()
            tab.goto(f"{url}/page.html")
            tab.wait_for_selector("div.gdl-live[data-state=live]", timeout=120_000)
            for i in range(repeats + 3):            # the first three are warm-up
                b = tab.evaluate(timed_js, x.ravel().tolist())
                t = time.perf_counter()
                keras_call()
                k = (time.perf_counter() - t) * 1000 / per
                if i >= 3:
                    browser_ms.append(b)
                    keras_ms.append(k)
            browser.close()
    ratios = np.array(browser_ms) / np.array(keras_ms)
    onnx_mb, parity = meta["onnx_bytes"] / 1e6, meta["parity_max_abs"]
    what = f"{BATCH} samples" + (f", {DDIM_STEPS} DDIM steps" if live.kind == "ddim" else "")
    if live.kind == "guided-ddim":
        what = (f"{T2I_FACES} faces, {T2I_STEPS} guided DDIM steps at w = {T2I_GUIDANCE:g} "
                f"(ONNX: U-Net + text encoder and prior, "
                f"{prompt_meta['onnx_bytes'] / 1e6:.2f} MB)")
        onnx_mb += prompt_meta["onnx_bytes"] / 1e6
        parity = max(parity, prompt_meta["parity_max_abs"])
    if live.kind == "latent-plane":
        what = "1 image (the decoder at one point)"
    if live.kind == "text":
        what = f"1 token (mean of {per}, greedy, after a {len(prompt)}-token prompt)"
    return dict(name=name, weights=weights, what=what, onnx_mb=onnx_mb,
                parity=parity, browser=float(np.median(browser_ms)),
                keras=float(np.median(keras_ms)), ratio=float(np.median(ratios)), n=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="time the smoke weights instead")
    parser.add_argument("names", nargs="*", help="live models (default: all)")
    args = parser.parse_args()
    import gdl.live

    import gdl.weights

    rows = []
    for name in args.names or gdl.live.LIVE_MODELS:
        if gdl.live.LIVE_MODELS[name].kind == "prompt-encoder":   # timed with its view's model
            continue
        weights = gdl.live.LIVE_MODELS[name].weights + (".smoke" if args.smoke else "")
        try:
            gdl.weights.record(weights)
        except gdl.weights.WeightsError:
            print(f"{name}: no weights {weights!r} published; skipped")
            continue
        rows.append(measure(name, weights, args.repeats))
    command = " ".join(["python benchmarks/live.py", *sys.argv[1:]])
    lines = ["# Live models: size and time per generation", "",
             f"`{command}` on {machine()}; headless "
             "Debian Chromium, ONNX Runtime Web (WebAssembly, one thread). Medians over "
             "alternating calls.", "",
             "| model (weights) | a generation | ONNX | max abs ONNX - Keras | browser, ms "
             "| Keras, ms | browser / Keras |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} (`{r['weights']}`) | {r['what']} | {r['onnx_mb']:.2f} MB | "
                     f"{r['parity']:.1e} | "
                     f"{r['browser']:.1f} | {r['keras']:.1f} | {r['ratio']:.2f} |")
    text = "\n".join(lines) + "\n"
    (HERE / "live.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
