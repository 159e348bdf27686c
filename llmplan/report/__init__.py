"""Renderers at the edge: rich tables, JSON, plots. The core never prints."""
