"""A short clip in the page: frames encoded as a WebM (VP9) video, embedded so it plays offline."""
from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import numpy as np

from gdl.audio import HTMLFragment
from gdl.viz.images import to_display

MAX_BYTES = 3_000_000   # a page is read online: a clip larger than this belongs elsewhere


def encode_webm(frames, fps: int = 25, scale: int = 4) -> bytes:
    """Frames (T, H, W, 3) (uint8, or floats in [0, 1]) -> the bytes of a VP9 WebM, each pixel
    shown as `scale` x `scale` pixels (nearest neighbour: small frames stay sharp)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise ImportError("video needs the imageio-ffmpeg package (it brings an ffmpeg binary):  "
                          "pip install imageio-ffmpeg") from exc
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected RGB frames shaped (T, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        frames = np.round(to_display(frames) * 255).astype(np.uint8)
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = frames.shape[1:3]
    fd, path = tempfile.mkstemp(suffix=".webm")
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            path, (width, height), fps=fps, codec="libvpx-vp9", pix_fmt_out="yuv420p",
            output_params=["-crf", "36", "-b:v", "0", "-row-mt", "1"],
            macro_block_size=1, ffmpeg_log_level="error")
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        return Path(path).read_bytes()
    finally:
        Path(path).unlink(missing_ok=True)


def video_html(frames, fps: int = 25, scale: int = 4, caption: str = "") -> HTMLFragment:
    """A ``<video controls loop>`` element holding the clip as an embedded WebM (base64 data URI)."""
    data = encode_webm(frames, fps=fps, scale=scale)
    if len(data) > MAX_BYTES:
        raise ValueError(f"the clip is {len(data) / 1e6:.1f} MB; keep page videos under "
                         f"{MAX_BYTES / 1e6:.0f} MB (fewer frames, a lower fps or scale)")
    text = base64.b64encode(data).decode("ascii")
    label = f' aria-label="{caption}"' if caption else ""
    return HTMLFragment(f'<video controls loop muted playsinline preload="metadata"{label} '
                        f'style="max-width:100%" src="data:video/webm;base64,{text}">'
                        "Your browser cannot play this WebM video.</video>")
