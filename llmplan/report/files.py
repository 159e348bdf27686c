"""The atomic file writer now lives in llmplan.files (it writes data, not only renderings); kept here by name."""

from llmplan.files import atomic_target, save_figure, write_json, write_text  # noqa: F401
