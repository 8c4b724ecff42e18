"""Live models in the page: a generator from the weights store, exported to ONNX and run in the
reader's browser by ONNX Runtime Web (issue 20; DESIGN §4).

Three parts, used by the book's build (``book/_ext/gdl_book.py``) and by the chapters:

- `export_onnx` writes a Keras model's ONNX file atomically, its weights in float16 where that
  changes nothing (`halve_weights`), and checks it against Keras with ONNX Runtime on fixed
  inputs (the largest absolute difference is returned, and is an error above a tolerance);
- `LIVE_MODELS` names the generating part of each published model that a page runs live, and
  `export_live` exports it, from the published weights, with a small JSON description the
  page's script reads (input size, value range, file size, the parity measured, and what the
  widget of its `kind` needs: a "latent-grid" maps latent vectors to images in one network call,
  a "ddim" diffusion model is a noise-predicting network the page calls once per sampling
  step, so the page also gets the noise schedule and the pixel normalisation; a "text" model is
  a GPT's forward pass, token ids -> the next token's logits, that the page calls once per
  word, so the page also gets the vocabulary and the ids it needs to write with it);
- `runtime` fetches the pinned ``onnxruntime-web`` package from the npm registry once, checks it
  against the integrity hash the registry publishes, and keeps the three files a page needs.

``gdl.viz.live_generator`` emits the widget; ``book/_static/live.js`` runs it.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from gdl.paths import DataError, cache_dir

# The browser runtime: pinned, and checked against the registry's published integrity hash.
ORT_VERSION = "1.31.1"
ORT_INTEGRITY = ("sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7Nmu"
                 "ZPXrQ73k82URw==")
ORT_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_VERSION}.tgz"
# The single-threaded WebAssembly build: the script, its loader and the binary (14 MB).
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
# float32 round-off through a few convolutions; anything larger means the export is wrong.
TOLERANCE = 1e-4


class LiveError(DataError):
    """An export does not match Keras, or the browser runtime cannot be had; the message says why."""


# --------------------------------------------------------------------------- export
def _feeds(inputs) -> tuple[list[np.ndarray], bool]:
    """Example inputs as arrays (integers as int32, token ids; anything else as float32)."""
    several = isinstance(inputs, (list, tuple))
    feeds = []
    for x in (inputs if several else [inputs]):
        x = np.asarray(x)
        feeds.append(x.astype("int32" if np.issubdtype(x.dtype, np.integer) else "float32"))
    return feeds, several


_ERFC_REGISTERED = False


def _register_erfc() -> None:
    """Teach tf2onnx TensorFlow's Erfc, as 1 - Erf (ONNX has Erf, not Erfc).

    Keras' exact GELU (the GPT's feed-forward activation) is 0.5 x erfc(-x / sqrt 2) on
    TensorFlow; tf2onnx 1.17 has no handler for Erfc and writes a node ONNX Runtime refuses.
    """
    global _ERFC_REGISTERED
    if _ERFC_REGISTERED:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):     # Erf is in ONNX from opset 9 on
            node.type = "Erf"                          # the node computes erf(x) in place,
            dtype = ctx.get_dtype(node.output[0])      # a new one 1 - erf(x) after it
            one = ctx.make_const(utils.make_name(f"{node.name}_one"),
                                 np.array(1, utils.map_onnx_to_numpy_type(dtype)))
            after = ctx.insert_new_node_on_output("Sub", node.output[0],
                                                  name=utils.make_name(f"{node.name}_erfc"),
                                                  inputs=[one.output[0], node.output[0]])
            ctx.set_dtype(after.output[0], dtype)
            ctx.copy_shape(node.output[0], after.output[0])

    _ERFC_REGISTERED = True


def halve_weights(path: str | os.PathLike, min_size: int = 256) -> int:
    """Store the float32 weights of the ONNX file at `path` that float16 holds exactly as float16,
    each followed by a Cast back to float32; return how many were halved.

    The computation stays in float32, so the outputs do not change at all. The weights store
    keeps weights in float16 where that does not change samples (`gdl.weights.save`), so most
    of a published model's weights are such numbers, and its file shrinks by about half.
    Tensors under `min_size` values are left as they are (the Cast would cost more than it saves).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inputs = {i.name for i in graph.input}
    kept, casts = [], []
    for init in graph.initializer:
        values = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if (values is None or values.size < min_size or init.name in inputs
                or not np.array_equal(values.astype(np.float16).astype(np.float32), values)):
            kept.append(init)
            continue
        half = f"{init.name}__float16"
        kept.append(numpy_helper.from_array(values.astype(np.float16), half))
        casts.append(helper.make_node("Cast", [half], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_float32"))
    if casts:
        del graph.initializer[:]
        graph.initializer.extend(kept)
        nodes = casts + list(graph.node)          # the casts first: a topological order
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(path))
    return len(casts)


def export_onnx(model, path: str | os.PathLike, inputs,
                tolerance: float = TOLERANCE, *, also=(), input_signature=None) -> float:
    """Export `model` to ONNX at `path`; return max |ONNX - Keras| on `inputs` (and `also`).

    inputs: one array for a model with one input, or a list with one array per input, in the
    order of the model's inputs (the ONNX file keeps that order and the inputs' names); integer
    arrays are fed as int32, all others as float32. also: further example inputs, e.g. of other
    shapes where a dimension is dynamic, checked the same way. input_signature: passed to
    Keras' export (needed for a subclassed model with a dynamic dimension other than the batch).
    """
    import onnxruntime as ort

    _register_erfc()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checks = [_feeds(x) for x in [inputs, *also]]
    with warnings.catch_warnings():       # Keras warns of a softmax over one position (T = 1)
        warnings.filterwarnings("ignore", "You are using a softmax over axis", UserWarning)
        expected = [np.asarray(model(f if several else f[0]))   # the first builds a new model
                    for f, several in checks]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():   # tf2onnx probes a NumPy alias NumPy has deprecated
            warnings.simplefilter("ignore", FutureWarning)
            model.export(tmp, format="onnx", verbose=False, input_signature=input_signature)
        halve_weights(tmp)            # checked with the rest below: it must change nothing
        session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        diff = 0.0
        for (feeds, _), want in zip(checks, expected):
            if len(names) != len(feeds):
                raise LiveError(f"ONNX export of {model.name} takes {len(names)} inputs, "
                                f"{len(feeds)} were given")
            got = session.run(None, dict(zip(names, feeds)))[0]
            if got.shape != want.shape:
                raise LiveError(f"ONNX export of {model.name} gives shape {got.shape}, Keras "
                                f"{want.shape}")
            diff = max(diff, float(np.abs(got - want).max()))
        if not diff <= tolerance:
            raise LiveError(f"ONNX export of {model.name} differs from Keras by {diff:.2e} "
                            f"(tolerance {tolerance:.0e}); the page would show other samples "
                            "than the book's model. Check the tf2onnx and Keras versions.")
        os.chmod(tmp, 0o644)          # served as is: readable by the web server
        os.replace(tmp, path)
        return diff
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@dataclass(frozen=True)
class LiveModel:
    """The generating part of a published model, as a page runs it."""

    weights: str                  # recipe name in the weights store (its cpu weights)
    build: Callable[[dict], object]   # manifest settings -> (full model, generating part)
    input_size: Callable[[dict], int]  # normal draws per sample (latent size; noise pixels;
                                       # text: the most tokens a call takes, the context)
    value_range: tuple[float, float]  # what the samples span, mapped to black..white
                                      # (text: unused, the range of the softmax)
    what: str                         # for the widget's caption
    kind: str = "latent-grid"         # the widget live.js builds for it
    # settings, rng -> example inputs for the parity check (default: 4 latent vectors)
    probe: Callable[[dict, np.random.Generator], object] | None = None
    # the weights' record, generating part -> the kind's own fields of the page's description
    # (called before the export: it may refuse weights the page could not use)
    describe: Callable[[dict, object], dict] | None = None
    # settings, rng -> further example inputs (e.g. other sequence lengths), checked too
    more_probes: Callable[[dict, np.random.Generator], list] | None = None
    # settings -> Keras' export input_signature (None: the model's own inputs)
    signature: Callable[[dict], list] | None = None
    tolerance: float = TOLERANCE      # max |ONNX - Keras| allowed on the probes


def _dcgan(settings: dict):
    from gdl.models.gan import DCGAN, build_discriminator, build_generator

    g = settings["generator"]
    model = DCGAN(build_generator(**g), build_discriminator(**settings["discriminator"]),
                  g["latent_dim"], 0.1)
    return model, model.generator


def _wgan(settings: dict):
    from gdl.models.gan import WGANGP, build_discriminator, build_generator

    g = settings["generator"]
    model = WGANGP(build_generator(**g), build_discriminator(**settings["critic"], name="critic"),
                   g["latent_dim"], n_classes=g.get("n_classes", 0))
    return model, model.generator


def _label_probe(settings: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Four latent vectors with labels from one class to the other (one-hot, and mixes)."""
    g = settings["generator"]
    mix = np.linspace(0.0, 1.0, 4, dtype="float32")[:, None]        # (4, 1)
    return [rng.normal(size=(4, g["latent_dim"])).astype("float32"),
            np.concatenate([1 - mix, mix], axis=1)]                  # (4, 2): [not, is]


def _label_description(record: dict, generator) -> dict:
    """What the page's label slider needs: the attribute the two classes stand for."""
    settings = record["settings"]
    if settings["generator"].get("n_classes") != 2 or "label" not in settings:
        raise LiveError("the label slider is for a generator conditioned on one yes/no attribute")
    return {"label": settings["label"], "label_size": 2}


def _vae(settings: dict):
    from gdl.models.vae import VAE, build_decoder, build_encoder

    enc = settings["encoder"]
    model = VAE(build_encoder(**enc), build_decoder(**settings["decoder"]))
    model(np.zeros((1, *enc["input_shape"]), "float32"))     # built, so weights can load
    return model, model.decoder


def _diffusion(settings: dict):
    from gdl.models.diffusion import DiffusionModel, build_unet

    model = DiffusionModel(build_unet(**settings["network"]), settings["mean"], settings["std"],
                           schedule=settings["schedule"])
    return model, model.ema_network     # generate() samples with the EMA weights


def _image_shape(settings: dict) -> list[int]:
    import inspect

    from gdl.models.diffusion import build_unet

    net = settings["network"]
    channels = net.get("channels", inspect.signature(build_unet).parameters["channels"].default)
    return [net["image_size"], net["image_size"], channels]


def _schedule(settings: dict) -> str:
    # a record without one (chapter 13's decoder) was trained with DiffusionModel's default
    return settings.get("schedule", "offset cosine")


def _diffusion_probe(settings: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Noise images at noise variances from the whole schedule (t = 1, 2/3, 1/3, 0)."""
    from gdl.models.diffusion import SCHEDULES

    t = np.linspace(1.0, 0.0, 4, dtype="float32").reshape(-1, 1, 1, 1)
    _, noise_rate = SCHEDULES[_schedule(settings)](t)
    noise = rng.normal(size=(4, *_image_shape(settings))).astype("float32")
    return [noise, np.asarray(noise_rate, "float32") ** 2]


def _diffusion_description(record: dict, network) -> dict:
    """What the page's DDIM sampler needs besides the network: the schedule and normalisation."""
    import inspect

    from gdl.models.diffusion import offset_cosine_schedule

    settings = record["settings"]
    if _schedule(settings) != "offset cosine":
        raise LiveError(f"live.js samples with the offset cosine schedule only, not "
                        f"{_schedule(settings)!r}")
    defaults = inspect.signature(offset_cosine_schedule).parameters
    return {"image_shape": _image_shape(settings),
            "schedule": {"name": "offset cosine", "max_signal": defaults["max_signal"].default,
                         "min_signal": defaults["min_signal"].default},
            "mean": [float(v) for v in settings["mean"]],
            "std": [float(v) for v in settings["std"]],
            "inputs": [t.name for t in network.inputs]}   # (noisy images, noise variance)


def _gpt(settings: dict):
    """Chapter 9's GPT, and its forward pass cut to what the page needs: token ids (batch, T)
    -> logits of the token after the last one (batch, vocab_size).

    Only the last position's logits: the page samples one word per call, re-reading the whole
    text each time, and the output layer (vocab_size logits per position) is about half the
    network's work per position; all T positions would also be T times as much to copy out of
    the runtime per word.
    """
    import keras

    from gdl.models.transformer import GPT

    class NextTokenLogits(keras.Model):
        def __init__(self, gpt, **kwargs):
            super().__init__(**kwargs)
            self.gpt = gpt

        def call(self, tokens):
            hidden = self.gpt.transform(self.gpt.embed(tokens))    # (batch, T, d)
            return self.gpt.head(hidden[:, -1, :])                 # (batch, vocab_size)

    gpt = GPT(**settings["network"])
    return gpt, NextTokenLogits(gpt, name="gpt_next_token")


def _text_probe(settings: dict, rng: np.random.Generator) -> np.ndarray:
    """Two random id sequences of half the context."""
    net = settings["network"]
    return rng.integers(0, net["vocab_size"], size=(2, net["max_len"] // 2)).astype("int32")


def _text_more_probes(settings: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """The shortest sequence (the start token alone) and the longest (the whole context)."""
    net = settings["network"]
    start = net.get("start_id", net["vocab_size"] - 1)
    return [np.array([[start]], "int32"),
            rng.integers(0, net["vocab_size"], size=(1, net["max_len"])).astype("int32")]


def _text_signature(settings: dict) -> list:
    import keras

    return [keras.InputSpec(shape=(None, None), dtype="int32", name="tokens")]  # batch, length


def text_vocabulary(record: dict) -> list[str]:
    """The vocabulary (id -> token) the language model of `record` was trained with: published
    in its record (one token per line), checked against the SHA-256 in its settings."""
    text = record.get("vocabulary")
    if not isinstance(text, str):
        raise LiveError(
            f"The record of {record['name']!r} holds no vocabulary, so the page could not encode "
            "a prompt or decode the model's words. Publish the weights again with scripts/"
            f"pretrain.py (`python scripts/pretrain.py {record.get('recipe', record['name'])} "
            "--publish`), which writes it.")
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest != record["settings"]["vocabulary_sha256"]:
        raise LiveError(
            f"The vocabulary in the record of {record['name']!r} has SHA-256 {digest}, the "
            f"weights were trained with {record['settings']['vocabulary_sha256']}: the page "
            "would write other words than the model means. Restore weights/manifest.json "
            "(git checkout -- weights/manifest.json) or publish the weights again.")
    return text.split("\n")


def _text_description(record: dict, part) -> dict:
    """What the page's writer needs besides the network: the vocabulary and its special ids."""
    net = record["settings"]["network"]
    vocab = text_vocabulary(record)
    if len(vocab) != net["vocab_size"]:
        raise LiveError(f"{len(vocab)} tokens in the vocabulary, {net['vocab_size']} logits")
    start = net.get("start_id", net["vocab_size"] - 1)
    exclude = net.get("exclude_ids", [0, 1, start])
    return {"output_shape": [net["vocab_size"]],     # the next token's logits, per sequence
            "vocabulary": vocab, "vocab_size": net["vocab_size"], "max_len": net["max_len"],
            "start_id": start, "end_id": vocab.index("<end>"), "unknown_id": 1,
            "exclude_ids": [int(i) for i in exclude], "input": "tokens"}


# --------------------------------------------------------------------------- text to image (ch13)
# DALL-E 2 in chapter 13's small form: CLIP's text tower and the regression prior map a caption to
# the condition (a guessed CLIP image embedding); the guided U-Net paints a face from it. The page
# runs the first once per prompt ("prompt-encoder") and the second twice per DDIM step, with and
# without the condition, for classifier-free guidance ("guided-ddim").
PROMPT_MODEL = "unclip_prompt"     # the prompt encoder a "guided-ddim" page loads with its U-Net
_PROMPTS = ["a smiling woman with blond hair", "a man", "a photo of a young woman with bangs",
            "a man with a beard , eyeglasses and gray hair"]


def _clip_with(sha256: str):
    """The published CLIP whose weights have this SHA-256 (cpu or smoke), built and loaded."""
    import gdl.weights
    from gdl.models import multimodal as mm

    for name in ("clip_faces", "clip_faces.smoke"):
        try:
            record = gdl.weights.record(name)
        except DataError:
            continue
        if record["sha256"] == sha256:
            s = record["settings"]
            clip = mm.CLIP(mm.build_image_encoder(**s["image"]), mm.TextEncoder(**s["text"]))
            clip([np.zeros((1, 32, 32, 3), "float32"), np.ones((1, 4), "int32")])
            gdl.weights.load(name, clip)
            return clip
    raise LiveError(f"the prior was trained on CLIP weights {sha256[:12]}..., which the weights "
                    "store does not have: publish the prior again (python scripts/pretrain.py "
                    "unclip_prior) after clip_faces")


def _prompt_encoder(settings: dict):
    """The prior, and the page's part: caption ids (N, T) -> condition (N, D), i.e.
    prior(CLIP text embedding), with the text tower of the CLIP the prior was trained on."""
    import keras

    from gdl.models import multimodal as mm
    from gdl.models.prior import build_prior

    class PromptToCondition(keras.Model):
        def __init__(self, text_encoder, prior, **kwargs):
            super().__init__(**kwargs)
            self.text_encoder, self.prior = text_encoder, prior

        def call(self, tokens):
            return self.prior(mm.normalize(self.text_encoder(tokens)))     # (N, D)

    prior = build_prior(settings["embed_dim"], settings["width"])
    clip = _clip_with(settings["clip_sha256"])
    return prior, PromptToCondition(clip.text_encoder, prior, name="prompt_to_condition")


def _prompt_probe(settings: dict, rng: np.random.Generator) -> np.ndarray:
    from gdl.data.captions import CaptionTokenizer

    return CaptionTokenizer(settings["max_len"]).encode(_PROMPTS)      # (4, T) padded ids


def _prompt_signature(settings: dict) -> list:
    import keras

    return [keras.InputSpec(shape=(None, None), dtype="int32", name="tokens")]


def _prompt_description(record: dict, part) -> dict:
    """What the page needs to write a caption's ids as CaptionTokenizer.encode does."""
    from gdl.data.captions import CaptionTokenizer

    tok = CaptionTokenizer(record["settings"]["max_len"])
    if part.text_encoder.max_len != tok.max_len:
        raise LiveError(f"the prior's record says captions of {tok.max_len} ids, its CLIP's text "
                        f"tower reads {part.text_encoder.max_len}")
    return {"output_shape": [record["settings"]["embed_dim"]], "vocabulary": tok.words,
            "max_len": tok.max_len, "pad_id": tok.pad_id, "start_id": tok.start_id,
            "end_id": tok.end_id, "clip_sha256": record["settings"]["clip_sha256"],
            "input": "tokens"}


def _unclip(settings: dict):
    from gdl.models import multimodal as mm

    model = mm.GuidedDiffusion(mm.build_conditional_unet(**settings["network"]), settings["mean"],
                               settings["std"], drop_rate=settings["drop_rate"])
    return model, model.ema_network       # generate() samples with the EMA weights


def _unclip_probe(settings: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Noise images at four noise levels, two with a condition and two with the null one."""
    noise, variance = _diffusion_probe(settings, rng)
    d = settings["network"]["condition_dims"]
    condition = rng.normal(size=(4, d)).astype("float32")
    condition[2:] = 0.0
    return [noise, variance, condition]


def _unclip_description(record: dict, network) -> dict:
    """The DDIM sampler's fields, and what guidance needs: the condition's size, the prompt
    encoder, and the CLIP both must come from."""
    settings = record["settings"]
    own = _diffusion_description(record, network)
    return {**own, "condition_dims": settings["network"]["condition_dims"],
            "prompt_model": PROMPT_MODEL, "clip_sha256": settings["clip_sha256"]}


LIVE_MODELS: dict[str, LiveModel] = {
    "dcgan_bricks": LiveModel("dcgan_bricks", _dcgan,
                              lambda s: s["generator"]["latent_dim"], (-1.0, 1.0),
                              "DCGAN generator, LEGO bricks (chapter 4)"),
    "wgan_faces": LiveModel("wgan_faces", _wgan, lambda s: s["generator"]["latent_dim"],
                            (-1.0, 1.0), "WGAN-GP generator, CelebA faces (chapter 4)"),
    "cgan_blond": LiveModel("cgan_blond", _wgan, lambda s: s["generator"]["latent_dim"],
                            (-1.0, 1.0), "conditional WGAN-GP generator, CelebA faces "
                            "(chapter 4)", probe=_label_probe, describe=_label_description),
    "vae_faces": LiveModel("vae_faces", _vae, lambda s: s["decoder"]["latent_dim"], (0.0, 1.0),
                           "VAE decoder, CelebA faces (chapter 3)"),
    "vae_fashion": LiveModel("vae_fashion", _vae, lambda s: s["decoder"]["latent_dim"],
                             (0.0, 1.0), "VAE decoder, Fashion-MNIST (chapter 3)",
                             kind="latent-plane"),
    "diffusion_flowers": LiveModel("diffusion_flowers", _diffusion,
                                   lambda s: int(np.prod(_image_shape(s))), (0.0, 1.0),
                                   "DDIM diffusion model, flowers (chapter 8)", kind="ddim",
                                   probe=_diffusion_probe, describe=_diffusion_description),
    "gpt_wine": LiveModel("gpt_wine", _gpt, lambda s: s["network"]["max_len"], (0.0, 1.0),
                          "GPT, wine reviews (chapter 9)", kind="text", probe=_text_probe,
                          describe=_text_description, more_probes=_text_more_probes,
                          signature=_text_signature),
    PROMPT_MODEL: LiveModel("unclip_prior", _prompt_encoder, lambda s: s["max_len"], (-1.0, 1.0),
                            "CLIP text encoder and prior, CelebA captions (chapter 13)",
                            kind="prompt-encoder", probe=_prompt_probe,
                            describe=_prompt_description, signature=_prompt_signature),
    "unclip_faces": LiveModel("unclip_faces", _unclip,
                              lambda s: 3 * s["network"]["image_size"] ** 2, (0.0, 1.0),
                              "guided diffusion decoder, CelebA faces (chapter 13)",
                              kind="guided-ddim", probe=_unclip_probe,
                              describe=_unclip_description),
}


_VIEW_SETTINGS = re.compile(r'class="gdl-live" data-settings="([^"]*)"')
_WIDGETS = {"latent-grid": "gdl.viz.live.live_generator (or gdl.viz.live_edit.live_attributes)",
            "latent-plane": "gdl.viz.live_plane.live_plane",
            "ddim": "gdl.viz.live.live_diffusion", "text": "gdl.viz.live.live_writer",
            "guided-ddim": "gdl.viz.live_prompt.live_text_to_image"}


def check_views(page_html: str) -> list[str]:
    """What is wrong with the live views (gdl.viz.live widgets) in a page's HTML: a model that is
    not in LIVE_MODELS, or a widget of another kind than its model's. The build reports these."""
    problems = []
    for found in _VIEW_SETTINGS.finditer(page_html):
        settings = json.loads(html.unescape(found.group(1)))
        name, kind = settings.get("model"), settings.get("kind")
        if name not in LIVE_MODELS:
            problems.append(f"live view of {name!r}: no such model in gdl.live.LIVE_MODELS "
                            f"(known: {', '.join(sorted(LIVE_MODELS))})")
        elif kind and LIVE_MODELS[name].kind != kind:
            have = LIVE_MODELS[name].kind
            how = (f"show it with {_WIDGETS[have]}" if have in _WIDGETS
                   else "no view shows it alone (a view of another model loads it)")
            problems.append(f"live view of {name!r} asks for kind {kind!r}, but it is a {have!r} "
                            f"model: {how}")
    return problems


def export_live(name: str, folder: str | os.PathLike, weights_name: str | None = None) -> dict:
    """Export `name`'s generator from the weights store to folder/NAME.onnx and NAME.json.

    Skipped (the existing description returned) when both files are there and were made from
    the same weights file (its SHA-256) with this gdl.
    """
    import gdl
    import gdl.weights

    live = LIVE_MODELS[name]
    weights_name = weights_name or live.weights
    record = gdl.weights.record(weights_name)
    folder = Path(folder)
    onnx_path, meta_path = folder / f"{name}.onnx", folder / f"{name}.json"
    if onnx_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if (meta.get("weights_sha256") == record["sha256"]
                and meta.get("kind", "latent-grid") == live.kind
                and meta.get("gdl") == gdl.__version__
                and meta.get("onnx_bytes") == onnx_path.stat().st_size):
            return meta
    settings = record["settings"]
    model, part = live.build(settings)
    gdl.weights.load(weights_name, model, settings)
    own = live.describe(record, part) if live.describe else {}
    size = live.input_size(settings)
    rng = np.random.default_rng(0)
    probe = (live.probe(settings, rng) if live.probe
             else rng.normal(size=(4, size)).astype("float32"))
    diff = export_onnx(part, onnx_path, probe, live.tolerance,
                       also=live.more_probes(settings, rng) if live.more_probes else (),
                       input_signature=live.signature(settings) if live.signature else None)
    meta = {"name": name, "kind": live.kind, "weights": weights_name,
            "weights_sha256": record["sha256"],
            "steps": record["steps"], "what": live.what, "input_size": size,
            "output_shape": own.pop("output_shape", None) or list(part.output_shape[1:]),
            "value_range": list(live.value_range),
            "onnx_bytes": onnx_path.stat().st_size, "parity_max_abs": diff,
            "gdl": gdl.__version__, **own}
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".json", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, meta_path)
    return meta


def write_index(folder: str | os.PathLike, runtime: bool) -> dict:
    """Write folder/index.json: the models exported there and whether the page has the runtime.

    The page's script reads it first, so that a view the build could not make asks the server
    for nothing that is not there.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = sorted(p.stem for p in folder.glob("*.json")
                    if p.name != "index.json" and (folder / f"{p.stem}.onnx").exists())
    index = {"models": models, "runtime": bool(runtime)}
    (folder / "index.json").write_text(json.dumps(index))
    return index


# --------------------------------------------------------------------------- the browser runtime
def _integrity_ok(data: bytes, integrity: str) -> bool:
    algo, _, digest = integrity.partition("-")
    return base64.b64encode(hashlib.new(algo, data).digest()).decode() == digest


def runtime(fetch: bool = True) -> Path:
    """The folder holding ONNX Runtime Web's files (ORT_FILES), fetched from npm on first use."""
    folder = cache_dir() / f"onnxruntime-web-{ORT_VERSION}"
    if all((folder / f).exists() for f in ORT_FILES):
        return folder
    how = (f"download {ORT_URL} and put the files {', '.join(ORT_FILES)} from its package/dist/ "
           f"into {folder}")
    if not fetch:
        raise LiveError(f"ONNX Runtime Web {ORT_VERSION} is not here; {how}.")
    import urllib.request

    try:
        with urllib.request.urlopen(ORT_URL, timeout=60) as response:
            data = response.read()
    except OSError as exc:
        raise LiveError(f"Could not fetch ONNX Runtime Web from the npm registry ({exc}); "
                        f"{how}.") from exc
    if not _integrity_ok(data, ORT_INTEGRITY):
        raise LiveError(f"The downloaded {ORT_URL} does not match its published integrity hash; "
                        "nothing was kept. Try again, or " + how + ".")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for name in ORT_FILES:
                member = tar.getmember(f"package/dist/{name}")
                with tar.extractfile(member) as src, open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        for file in tmp.iterdir():
            file.chmod(0o644)
        tmp.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder
