"""Example caikit_mm plugin: the CATALOG finder, which loads models by short name.

caikit_mm imports :mod:`caikit_mm_catalog.finder` through the ``caikit_mm.finders``
entry point only when a configured finder has type ``CATALOG``.
"""
