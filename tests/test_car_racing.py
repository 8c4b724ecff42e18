"""Tests of chapter 12's environment and data (gdl.data.car_racing) and of page videos
(gdl.viz.video): headless CarRacing, preprocessing, seeded rollouts, their cache files."""
from __future__ import annotations

import numpy as np
import pytest

from gdl.data import car_racing as cr
from gdl.paths import DataError


def test_preprocess_cuts_the_dashboard_and_resizes():
    frame = np.zeros((96, 96, 3), np.uint8)
    frame[84:] = 255                       # the dashboard rows, bright
    out = cr.preprocess(frame)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out.max() == 0, "dashboard pixels leaked into the frame"
    with pytest.raises(ValueError, match="CarRacing observation"):
        cr.preprocess(np.zeros((96, 96), np.uint8))


def test_headless_environment_is_seeded():
    """No display is needed, observations are 64x64, and a seed fixes the track and frames."""
    def run(seed):
        env = cr.make_env(max_steps=30)
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for action in cr.random_actions(np.random.default_rng(0), 29):
            obs, *_ = env.step(action)
            frames.append(obs)
        env.close()
        return np.stack(frames)

    a, b, c = run(3), run(3), run(4)
    assert a.shape == (30, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c), "another seed should give another track"
    assert a[-1].std() > 5, "the last frame is flat: nothing was rendered"


def test_random_actions_stay_in_the_action_space():
    actions = cr.random_actions(np.random.default_rng(1), 500)
    assert actions.shape == (500, 3)
    assert actions[:, 0].min() >= -1 and actions[:, 0].max() <= 1
    assert actions[:, 1:].min() >= 0 and actions[:, 1:].max() <= 1
    held = np.mean(np.all(actions[1:] == actions[:-1], axis=1))
    assert 0.7 < held < 0.99, f"actions should be held for several frames ({held:.2f} repeats)"


def test_rollouts_round_trip_and_reject_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    data = cr.collect_random(2, 25, seed=7, workers=2, progress=False)
    assert list(data.lengths) == [25, 25] and data.frames.shape == (50, 64, 64, 3)
    assert np.array_equal(data.seeds, [7, 8])
    path = cr.rollouts_path(2, 25, 7)
    again = cr.collect_random(2, 25, seed=7, progress=False)     # from the cache
    assert np.array_equal(again.frames, data.frames)
    assert np.allclose(data.returns(), [data.episode(i)["rewards"].sum() for i in range(2)])
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary file left"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="delete it"):
        cr.collect_random(2, 25, seed=7, progress=False)


def test_video_encodes_every_frame():
    import imageio_ffmpeg

    from gdl.viz.video import encode_webm, video_html

    frames = np.zeros((12, 16, 16, 3), np.uint8)
    frames[:, :, :8, 0] = np.arange(12)[:, None, None] * 20
    data = encode_webm(frames, fps=10, scale=2)
    assert data[:4] == b"\x1a\x45\xdf\xa3"                       # the EBML (WebM) magic
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".webm") as f:
        f.write(data)
        f.flush()
        reader = imageio_ffmpeg.read_frames(f.name)
        meta = next(reader)
        assert meta["size"] == (32, 32) and sum(1 for _ in reader) == 12
    assert video_html(frames).startswith("<video controls")
    with pytest.raises(ValueError, match="RGB frames"):
        encode_webm(frames[..., 0])
