"""llmkit: adapt pretrained language models from one CLI (see README.md)."""

__version__ = "0.1.0"
