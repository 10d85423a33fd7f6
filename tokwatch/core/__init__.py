"""The core: the normalized vocabulary, byte-offset tailing, prices, and the record of usage.

Nothing here imports Textual, the agents, or anything above (an import-linter contract).
"""
