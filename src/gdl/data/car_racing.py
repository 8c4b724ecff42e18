"""Gymnasium's CarRacing as a data source: 64x64 frames, random-policy rollouts, stored compactly.

The environment is ``CarRacing-v3`` from ``gymnasium[box2d]`` (a top-down car on a random track,
96x96 RGB observations, actions [steer in -1..1, gas 0..1, brake 0..1], reward -0.1 a frame and
+1000/N for each of the track's N tiles the car first touches, episodes of at most 1000 frames).
It renders off-screen, so it runs with no display (SDL's dummy video driver), and a seed fixes
the track and so the frames.

Frames are preprocessed as in Ha & Schmidhuber (2018): the bottom 12 rows (the dashboard) are
cut off and the 84x96 picture is resized to 64x64 (uint8 RGB).

Rollouts (frames, actions, rewards, terminations of whole episodes) are collected by worker
processes and cached as one compressed ``.npz`` under ``GDL_CACHE_DIR/car_racing`` (written
atomically, keyed by the collection's settings).

Used in chapter 12 (world models).
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdl.paths import DataError, cache_dir

ENV_ID = "CarRacing-v3"
FRAME_SIZE = 64
DASHBOARD_ROWS = 12       # the speed, ABS and steering bars under the 84x96 view of the road
ACTION_DIM = 3            # steer, gas, brake
MAX_STEPS = 1000          # the environment's own episode limit
# Bump when the collected data would change (policy, preprocessing), so old caches are not reused.
ROLLOUT_VERSION = 1
INSTALL = "pip install 'gymnasium[box2d]'   (it brings Box2D and pygame)"


def _gym():
    """gymnasium, imported headless; a clear error when the box2d extra is missing."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")   # pygame draws off-screen: no display needed
    try:
        import gymnasium
        import Box2D  # noqa: F401
    except ImportError as exc:
        raise DataError(f"CarRacing needs gymnasium with its box2d extra ({exc}). Install it with:  "
                        f"{INSTALL}") from exc
    return gymnasium


def preprocess(frame: np.ndarray) -> np.ndarray:
    """A 96x96x3 observation -> the 64x64x3 uint8 frame the models see (dashboard cut off)."""
    from PIL import Image

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] <= DASHBOARD_ROWS:
        raise ValueError(f"expected an (H, W, 3) CarRacing observation, got shape {frame.shape}")
    road = frame[: frame.shape[0] - DASHBOARD_ROWS].astype(np.uint8)
    return np.asarray(Image.fromarray(road).resize((FRAME_SIZE, FRAME_SIZE), Image.BILINEAR))


def make_env(max_steps: int = MAX_STEPS, frames: bool = True):
    """CarRacing with 64x64 observations (`frames=False`: the raw 96x96 ones), at most `max_steps` frames."""
    gym = _gym()
    env = gym.make(ENV_ID, max_episode_steps=max_steps)
    if frames:
        shape = (FRAME_SIZE, FRAME_SIZE, 3)
        env = gym.wrappers.TransformObservation(
            env, preprocess, gym.spaces.Box(0, 255, shape, np.uint8))
    return env


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """The data-collection policy: (n, 3) random actions, each held 1-20 frames.

    Uniform steering, uniform gas and, one hold in seven, a random brake: a
    per-frame uniform policy brakes all the time and barely moves, so it
    would show the models little road.
    """
    out = np.empty((n, ACTION_DIM), np.float32)
    t = 0
    while t < n:
        hold = int(rng.integers(1, 21))
        brake = rng.uniform(0, 1) if rng.uniform() < 1 / 7 else 0.0
        out[t:t + hold] = (rng.uniform(-1, 1), rng.uniform(0, 1), brake)
        t += hold
    return out


def random_episode(seed: int, max_steps: int = MAX_STEPS) -> dict[str, np.ndarray]:
    """One episode of the random policy on the track of `seed`: frames (T, 64, 64, 3) uint8 (the
    frame before each action), actions (T, 3), rewards (T,), terminated (T,) bool."""
    env = make_env(max_steps)
    try:
        obs, _ = env.reset(seed=int(seed))
        actions = random_actions(np.random.default_rng(int(seed)), max_steps)
        frames, rewards, dones = [], [], []
        for action in actions:
            frames.append(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
            dones.append(terminated)
            if terminated or truncated:
                break
    finally:
        env.close()
    t = len(frames)
    return {"frames": np.stack(frames), "actions": actions[:t],
            "rewards": np.asarray(rewards, np.float32), "dones": np.asarray(dones, bool)}


@dataclass
class Rollouts:
    """Whole episodes laid end to end; episode i is rows ``starts[i]:starts[i] + lengths[i]``."""

    frames: np.ndarray     # (N, 64, 64, 3) uint8, the frame before each action
    actions: np.ndarray    # (N, 3) float32
    rewards: np.ndarray    # (N,) float32, the reward the action earned
    dones: np.ndarray      # (N,) bool, the action ended the episode (left the playfield)
    lengths: np.ndarray    # (E,) int64
    seeds: np.ndarray      # (E,) int64, the track of each episode

    def __post_init__(self):
        n = len(self.frames)
        if not (len(self.actions) == len(self.rewards) == len(self.dones) == n == int(self.lengths.sum())):
            raise DataError("rollout arrays disagree in length; delete the cached file and collect again")

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def episode(self, i: int) -> dict[str, np.ndarray]:
        s, n = int(self.starts[i]), int(self.lengths[i])
        return {k: getattr(self, k)[s:s + n] for k in ("frames", "actions", "rewards", "dones")}

    def returns(self) -> np.ndarray:
        """The return of each episode (its summed reward)."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.starts)

    @classmethod
    def join(cls, episodes: list[dict], seeds) -> "Rollouts":
        cat = {k: np.concatenate([e[k] for e in episodes]) for k in ("frames", "actions", "rewards", "dones")}
        return cls(**cat, lengths=np.array([len(e["frames"]) for e in episodes], np.int64),
                   seeds=np.asarray(seeds, np.int64))

    def save(self, path: str | os.PathLike) -> None:
        """Write a compressed .npz through a temporary file and a rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **{k: getattr(self, k) for k in
                                          ("frames", "actions", "rewards", "dones", "lengths", "seeds")})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Rollouts":
        try:
            with np.load(path) as data:
                return cls(**{k: data[k] for k in ("frames", "actions", "rewards", "dones", "lengths", "seeds")})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"the rollout file {path} is unreadable ({exc}); delete it and collect "
                            "again") from exc


def _collect_one(args) -> dict:
    return random_episode(*args)


def rollouts_path(episodes: int, max_steps: int, seed: int) -> Path:
    key = json.dumps({"env": ENV_ID, "episodes": episodes, "max_steps": max_steps, "seed": seed,
                      "version": ROLLOUT_VERSION, "size": FRAME_SIZE}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / "car_racing" / f"random-{episodes}x{max_steps}-seed{seed}-{digest}.npz"


def collect_random(episodes: int, max_steps: int = MAX_STEPS, seed: int = 0, workers: int | None = None,
                   progress: bool = True) -> Rollouts:
    """`episodes` random-policy episodes on tracks seed, seed+1, ...; cached, collected by `workers` processes."""
    if episodes < 1 or max_steps < 1:
        raise ValueError(f"need at least one episode of one step, got {episodes} x {max_steps}")
    path = rollouts_path(episodes, max_steps, seed)
    if path.is_file():
        return Rollouts.load(path)
    _gym()   # fail here, with the install hint, rather than inside a worker
    seeds = [seed + i for i in range(episodes)]
    workers = max(1, min(workers or os.cpu_count() or 1, episodes))
    if multiprocessing.parent_process() is not None:
        workers = 1   # already a worker (e.g. a script without a __main__ guard): no pool of pools
    jobs = [(s, max_steps) for s in seeds]
    from tqdm.auto import tqdm

    bar = tqdm(total=episodes, desc="rollouts", unit="episode", disable=not progress)
    try:
        if workers == 1:
            done = []
            for job in jobs:
                done.append(_collect_one(job))
                bar.update()
        else:
            # spawned, not forked: the parent may hold TensorFlow's threads, which a fork would copy
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                done = []
                for episode in pool.imap(_collect_one, jobs):
                    done.append(episode)
                    bar.update()
    finally:
        bar.close()
    data = Rollouts.join(done, seeds)
    data.save(path)
    return data
