"""tokwatch: a live token-usage and cost monitor for AI coding agents."""

__version__ = "0.1.0"
