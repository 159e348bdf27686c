"""llmplan: capacity planning and scaling laws for large language models."""

__version__ = "0.1.0"
