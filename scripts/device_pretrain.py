"""Continue a face model's pretraining on a borrowed GPU machine that has no CelebA folder.

`scripts/pretrain.py` reads CelebA through `gdl.data`, but a device machine gets only the
working tree (64 MiB in all), and the face folder does not fit beside the committed cache. So:

1. Here, pack the faces the recipes train on (the 9,000 training faces that
   `pretrain._faces(32, 10_000)` returns, rounded to 8 bits, error <= 1/510) into a lossless
   WebP of about 15 MB, and fetch the wheels the device lacks (it has JAX, not Keras):

       python scripts/device_pretrain.py pack
       python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
           --implementation cp --platform manylinux_2_28_x86_64 -d .whl keras==3.15.1 namex optree

   (`.gpu/` and `.whl/` are ignored: add them to `.git/info/exclude`.)
2. On the device, carrying `.gpu` and `.whl`, run recipes side by side, each publishing into
   its own folder seeded with the published record (so it resumes from the published weights):

       pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
       export PYTHONPATH=/tmp/site:$PWD/src KERAS_BACKEND=jax XLA_PYTHON_CLIENT_MEM_FRACTION=0.25
       for n in stylegan_faces wgan_faces cgan_blond; do
         mkdir -p /tmp/w_$n && cp weights/manifest.json weights/$n.weights.h5 /tmp/w_$n/
         GDL_WEIGHTS_DIR=/tmp/w_$n GDL_CACHE_DIR=/tmp/c_$n \\
           python3 scripts/device_pretrain.py run $n 6 > $OUT/$n.log 2>&1 &
       done; wait   # then copy each /tmp/w_$n/{$n.weights.h5,manifest.json} to $OUT

3. Here, copy the weights into weights/ and each record into weights/manifest.json.

The run-info line of such a session says where its faces came from.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / ".gpu"
GRID = (90, 100)                     # 9,000 faces as a 90 x 100 sprite
NOTE = "faces: the loader's 9,000 training faces (32x32) carried as an 8-bit lossless copy"
sys.path.insert(0, str(ROOT / "scripts"))


def pack() -> None:
    """Write .gpu/faces32.webp and .gpu/attrs.npz from the loader's faces, checking the round trip."""
    from PIL import Image

    import pretrain

    faces, attrs, columns = pretrain._faces(32, 10_000)                 # (9000, 32, 32, 3) in [0, 1]
    q = np.round(faces * 255).astype("uint8")
    rows, cols = GRID
    sprite = q.reshape(rows, cols, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(rows * 32, cols * 32, 3)
    PACK.mkdir(exist_ok=True)
    tmp = PACK / "faces32.tmp.webp"
    Image.fromarray(sprite).save(tmp, "WEBP", lossless=True, quality=100, method=6)
    if not np.array_equal(_unpack(tmp), q):
        tmp.unlink()
        raise SystemExit("the WebP round trip changed the faces; nothing written")
    os.replace(tmp, PACK / "faces32.webp")
    np.savez_compressed(PACK / "attrs.npz", attrs=attrs.astype("int8"), columns=np.array(columns))
    print(f"wrote {PACK / 'faces32.webp'} ({(PACK / 'faces32.webp').stat().st_size / 1e6:.1f} MB) "
          f"and attrs.npz")


def _unpack(path: Path) -> np.ndarray:
    from PIL import Image

    rows, cols = GRID
    sprite = np.asarray(Image.open(path).convert("RGB"))
    return sprite.reshape(rows, 32, cols, 32, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 32, 32, 3)


def packed_faces(size: int, n: int | None):
    """Stands in for `pretrain._faces` with the packed copy (32x32, the cpu profile's 10,000 only)."""
    if (size, n) != (32, 10_000):
        raise SystemExit(f"the packed faces are the cpu profile's (32x32 of 10,000); this recipe asks "
                         f"for {size}x{size} of {n}: run scripts/pretrain.py where CelebA is.")
    if not (PACK / "faces32.webp").is_file():
        raise SystemExit(f"no {PACK / 'faces32.webp'}: run `python scripts/device_pretrain.py pack` "
                         "where CelebA is, and carry .gpu")
    a = np.load(PACK / "attrs.npz")
    return (_unpack(PACK / "faces32.webp").astype("float32") / 255.0, a["attrs"].astype("float32"),
            [str(c) for c in a["columns"]])


def run(name: str, budget_minutes: float, steps: int) -> None:
    """pretrain.py NAME, resumed from the published record, for `budget_minutes` more minutes."""
    import gdl
    import pretrain

    run_info = gdl.run_info
    pretrain._faces = packed_faces
    gdl.run_info = lambda *a, note=None, **k: run_info(*a, note=note or NOTE, **k)
    rec = gdl.weights.read_manifest(gdl.weights.weights_dir()).get(name)
    if rec is None:
        raise SystemExit(f"no published record of {name} in {gdl.weights.weights_dir()}: copy "
                         "weights/manifest.json and its weights file there first")
    minutes = rec["wall_seconds"] / 60 + budget_minutes
    pretrain.main([name, "--steps", str(steps), "--minutes", f"{minutes:.1f}", "--checkpoint-minutes", "2"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pack", help="pack the faces into .gpu/ (run where CelebA is)")
    r = sub.add_parser("run", help="continue a recipe on the packed faces (run on the device)")
    r.add_argument("name")
    r.add_argument("minutes", type=float, help="training minutes to add to the published record's")
    r.add_argument("--steps", type=int, default=200_000, help="step target (the minutes stop it first)")
    args = parser.parse_args()
    if args.command == "pack":
        pack()
    else:
        run(args.name, args.minutes, args.steps)


if __name__ == "__main__":
    main()
