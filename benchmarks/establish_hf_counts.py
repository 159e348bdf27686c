"""Establish the parameter counts that Hugging Face transformers instantiates for the configs in tests/data/hf_configs.

Run once, in a throwaway environment that has transformers (llmplan itself never imports it):

    python3 -m venv --system-site-packages /tmp/hfvenv && /tmp/hfvenv/bin/pip install torch==2.13.0 transformers
    /tmp/hfvenv/bin/python benchmarks/establish_hf_counts.py            # print the counts
    /tmp/hfvenv/bin/python benchmarks/establish_hf_counts.py --write    # record them in tests/data/hf_configs/COUNTS.json

COUNTS.json keeps each version's counts under by_version; `--write --primary` makes a version's counts the ones the
tests compare to. The primary version is the last 4.x (4.57.6): transformers 5 forces T5's output head to be tied to
the input embedding (T5Config sets tie_word_embeddings = True whatever the file says), while T5 v1.1 / FLAN-T5
checkpoints hold a separate lm_head; 4.57.6 builds the layout the released weights have. The two versions agree on
every other config here, and tests/test_models_hf_config.py checks that they do.

Each model is built on the meta device (shapes only, no memory, no weights downloaded) with the class a user gets
for that model: AutoModelForCausalLM for decoders (a tied output head is one parameter, counted once), T5 with
T5ForConditionalGeneration, BERT and RoBERTa with AutoModel (BertModel / RobertaModel, pooler included). The count is
sum(p.numel() for p in model.parameters()), which visits shared parameters once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # configs are local files; nothing is fetched

CONFIGS = Path(__file__).resolve().parents[1] / "tests" / "data" / "hf_configs"
ENCODERS = {"bert", "roberta"}
ENCODER_DECODERS = {"t5"}


def model_class(model_type: str):
    import transformers

    if model_type in ENCODER_DECODERS:
        return transformers.T5ForConditionalGeneration
    if model_type in ENCODERS:
        return transformers.AutoModel
    return transformers.AutoModelForCausalLM


def count(config_dir: Path) -> tuple[int, str]:
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(config_dir)
    cls = model_class(config.model_type)
    with torch.device("meta"):  # Auto classes build with from_config, concrete ones with their constructor
        model = cls.from_config(config) if hasattr(cls, "from_config") else cls(config)
    return sum(p.numel() for p in model.parameters()), type(model).__name__


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="record this transformers version's counts in COUNTS.json (by_version)")
    parser.add_argument("--primary", action="store_true",
                        help="with --write: make this version's counts the ones the tests compare to")
    args = parser.parse_args()

    import torch
    import transformers

    counts = {}
    for config_file in sorted(CONFIGS.glob("*/config.json"), key=lambda p: p.parent.name.lower()):
        name = config_file.parent.name
        n, cls = count(config_file.parent)
        counts[name] = {"params": n, "class": cls}
        print(f"{name:28s} {cls:34s} {n:>18,}", flush=True)
    if args.write:
        target = CONFIGS / "COUNTS.json"
        out = json.loads(target.read_text()) if target.exists() else {}
        out.update(schema_version=1, kind="llmplan.hf_counts",
                   produced_by="benchmarks/establish_hf_counts.py (meta device; sum of unique parameters)")
        out.setdefault("by_version", {})[transformers.__version__] = {
            "torch_version": torch.__version__, "counts": {k: v["params"] for k, v in counts.items()}}
        if args.primary or "counts" not in out:
            out["transformers_version"] = transformers.__version__
            out["torch_version"] = torch.__version__
            out["counts"] = counts
        order = ["schema_version", "kind", "produced_by", "transformers_version", "torch_version", "counts"]
        out = {k: out[k] for k in sorted(out, key=lambda k: order.index(k) if k in order else len(order))}
        with tempfile.NamedTemporaryFile("w", dir=CONFIGS, delete=False, suffix=".tmp") as tmp:
            json.dump(out, tmp, indent=2)
            tmp.write("\n")
        os.replace(tmp.name, target)
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
