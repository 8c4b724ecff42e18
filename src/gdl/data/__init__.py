"""Dataset loaders: one function per dataset, reading the official layout under GDL_DATA_DIR."""
from gdl.data.flowers import Flowers, flowers
from gdl.data.images import CelebA, Split, celeba, cifar10, fashion_mnist, mnist
from gdl.data.lego import LegoBricks, lego_bricks
from gdl.data.text import epirecipes, wine_reviews
from gdl.paths import DataError, cache_dir, data_dir

__all__ = ["DataError", "cache_dir", "data_dir", "CelebA", "Split", "celeba", "cifar10",
           "fashion_mnist", "mnist", "Flowers", "flowers", "LegoBricks", "lego_bricks",
           "epirecipes", "wine_reviews"]
