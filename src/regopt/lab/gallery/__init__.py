"""The demo gallery: each entry reproduces one picture of the chapter and writes it under the demo directory.

Layout, imports pointing down:

- :mod:`.registry`: :data:`~.registry.GALLERY`, entry name -> function, in the order ``regopt demo`` runs them;
  the only module that imports the entries (nothing in the gallery imports it);
- ``<entry>.py``: one module per entry, named after it, defining the function ``<entry>(out, progress) ->
  GalleryResult``; training entries ship their config beside it as ``<entry>.toml``, run as ordinary run
  directories, so ``regopt run`` reproduces any of them alone;
- :mod:`.base`: what every entry shares (:class:`~.base.GalleryResult`, the shipped config and variants of it,
  the table writer, the one-thread rule);
- helpers of a few entries: :mod:`.meta_runs` (plain training loops of ``pretraining`` and ``curriculum``, the
  MNIST-1D MLPs of ``initialization``), :mod:`.manifold_tangent` (learned tangents of ``tangent_prop``);
- :mod:`.figures`: every figure the gallery draws, one module a topic.

This package imports nothing, so importing one entry does not import the others.
"""
