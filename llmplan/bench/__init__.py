"""The measuring side of llmplan: the only package that imports torch.

Modules are imported on demand (``from llmplan.bench.model import build_model``) so that importing this package
stays light; torch is loaded by the modules that need it.
"""
