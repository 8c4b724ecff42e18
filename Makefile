# The book's everyday commands. Run from the repository root.
PYTHON ?= python
# The project's offline data copy when it is there; otherwise the loaders' default (~/gdl-data).
GDL_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
# GDL_PROFILE (smoke, cpu, full) passes through from the environment or the command line;
# unset, gdl uses its default (gdl.config.DEFAULT_PROFILE).
export GDL_DATA_DIR

.PHONY: book execute test notebooks stale benchmark clean

book:            ## render _build/html from the committed execution cache
	jupyter-book build . --warningiserror --keep-going

execute:         ## execute CHAPTER (e.g. ch02) or every stale chapter into the cache, then refresh twins
	$(PYTHON) scripts/book.py execute $(CHAPTER) $(if $(CHAPTER),,$(if $(ALL),--all,))
	$(PYTHON) scripts/book.py twins $(CHAPTER)

test:            ## the test suite on TensorFlow, then the unit tests on JAX (what CI runs)
	$(PYTHON) -m pytest
	KERAS_BACKEND=jax $(PYTHON) -m pytest -m "not chapter and not build"

notebooks:       ## write the .ipynb twins (Colab) from the .md chapters
	$(PYTHON) scripts/book.py twins

stale:           ## list chapters whose cached outputs no longer match their code
	$(PYTHON) scripts/book.py stale

benchmark:       ## time the build from cache and each chapter's smoke run -> benchmarks/results.md
	$(PYTHON) benchmarks/book_timings.py

clean:
	rm -rf _build
