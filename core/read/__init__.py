"""The typed read layer: every SQL reader the pages, the ``/stats`` API and the vault use.

Readers take an engine (or a connection) and return polars frames or small typed values; nothing
here computes a series (that is :mod:`core.metrics`, frames in, frames out) and nothing here writes.
"""
