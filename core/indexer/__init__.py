"""The indexer: fetch (adaptive eth_getLogs) → decode (columnar ABI) → load (upsert + checkpoint).

Run it as ``python -m core.indexer``; see ``core/indexer/cli.py`` for the flags.
"""
