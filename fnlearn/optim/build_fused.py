"""Build the fused CPU kernels of ``fused=True`` into the cache (``$FNLEARN_CACHE``, default
``~/.cache/fnlearn``), for a checkout used without installing, a machine whose install had no
compiler, or an image built ahead of time::

    python -m fnlearn.optim.build_fused [--force]

An install (``pip install fnlearn``, ``pip install -e .``) builds the library into the package
already; see :mod:`fnlearn.optim._fused_build`.
"""

from ._fused_build import main

if __name__ == "__main__":
    main()
