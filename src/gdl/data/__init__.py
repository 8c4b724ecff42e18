"""Dataset loaders: one function per dataset, reading the official layout under GDL_DATA_DIR."""
from gdl.data.fetch import DataError, cache_dir, data_dir
from gdl.data.images import CelebA, Split, celeba, cifar10, fashion_mnist, mnist

__all__ = ["DataError", "cache_dir", "data_dir", "CelebA", "Split", "celeba", "cifar10", "fashion_mnist", "mnist"]
