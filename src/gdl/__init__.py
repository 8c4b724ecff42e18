"""gdl: the shared package of the book *Generative Deep Learning, executable*.

Chapters import plumbing from here (data loaders, figures, callbacks); the ideas
themselves are written out in the chapters.
"""
from gdl.config import PROFILES, __version__, pick, profile, run_info, seed_everything

__all__ = ["PROFILES", "pick", "profile", "run_info", "seed_everything", "__version__"]
