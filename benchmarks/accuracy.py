"""Predicted against measured, over a grid of configurations: memory and FLOPs of real training steps.

Memory: llmplan's prediction (weights, gradients, optimizer states, activations) against the bytes actually held,
counted tensor by tensor (parameters, gradients, AdamW states, tensors saved for backward deduplicated by storage;
llmplan.bench.memory_check). On a GPU, the run's torch.cuda.max_memory_allocated against the prediction instead.
FLOPs: llmplan's count (llmplan.estimate.flops, the one `llmplan compute` and the bench use) against
torch.utils.flop_counter.FlopCounterMode over one training step, with eager attention (FlopCounterMode has no
formula for the CPU flash kernel). FlopCounterMode counts matmuls only, so llmplan is expected to be higher by the
bias and norm terms (2 FLOPs per vector parameter per token): the table shows both the raw and the adjusted error.

Grid: two shapes (GPT-style: LayerNorm, GELU, biases, learned positions; LLaMA-style: RMSNorm, SwiGLU, rotary,
grouped-query attention) x dtype (fp32, bf16 autocast) x batch x sequence x attention (flash, eager) x recompute
(none, selective, full).

--blocks: the same over blocks of current architectures built from layer groups (MLA with a dense first layer and
a shared-expert MoE, sliding-window/global attention with sandwich norms, chunked and NoPE attention with a gated
shared expert, gpt-oss-style sinks with biased experts, and DeepSeek-V4's reduced test config: hyper-connections,
compressed attention with the HCA and CSA compressors), written to the `blocks` section.

Usage: python benchmarks/accuracy.py [--device cpu|cuda] [--quick] [--blocks] [--write docs/validation.md]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.startup import write_section  # noqa: E402
from llmplan.models.spec import ModelSpec  # noqa: E402

SHAPES = {
    "gpt-style": ModelSpec(name="gpt-style", arch="decoder", layers=2, hidden=128, heads=4, ffn=512, vocab=512,
                           context=512, qkv_bias=True, out_bias=True, mlp_bias=True),
    "llama-style": ModelSpec(name="llama-style", arch="decoder", layers=2, hidden=128, heads=4, kv_heads=2,
                             ffn=352, vocab=512, context=512, mlp="gated", activation="silu", position="rotary",
                             tied_embeddings=False, norm="rmsnorm"),
}


def block_shapes() -> dict:
    """Tiny current-architecture models, layer group by layer group (hidden 128, vocabulary 512)."""
    from llmplan.models.hf_config import read_hf_config
    from llmplan.models.layers import Attention, Dense, LayerGroup, MoE

    base = dict(arch="decoder", hidden=128, vocab=512, context=512, position="rotary", norm="rmsnorm",
                mlp="gated", activation="silu", tied_embeddings=False)
    mla = Attention(heads=4, kv_heads=4, head_dim=48, v_head_dim=32, q_lora_rank=64, kv_lora_rank=32,
                    qk_rope_head_dim=16)
    local = Attention(heads=4, kv_heads=2, head_dim=32, kind="sliding", window=32)
    full = Attention(heads=4, kv_heads=2, head_dim=32)
    chunk = Attention(heads=4, kv_heads=2, head_dim=32, kind="chunked", window=32)
    nope = Attention(heads=4, kv_heads=2, head_dim=32, rope=False)
    oss = dict(heads=4, kv_heads=2, head_dim=32, qkv_bias=True, out_bias=True, sinks=True)
    return {
        "mla-dense-first-moe": ModelSpec.from_groups(name="mla-dense-first-moe", **base, groups=(
            LayerGroup(1, mla, Dense(352)), LayerGroup(1, mla, MoE(8, 2, 96, shared_ffn=96)))),
        "sliding-global": ModelSpec.from_groups(name="sliding-global", **{**base, "activation": "gelu_pytorch_tanh"},
                                                groups=(LayerGroup(1, local, Dense(352), 4),
                                                        LayerGroup(1, full, Dense(352), 4))),
        "chunked-nope-shared": ModelSpec.from_groups(name="chunked-nope-shared", **base, groups=(
            LayerGroup(1, chunk, MoE(8, 2, 96, shared_ffn=192, shared_gate=True)),
            LayerGroup(1, nope, MoE(8, 2, 96, shared_ffn=192, shared_gate=True)))),
        "sinks-biased-experts": ModelSpec.from_groups(name="sinks-biased-experts", **base, groups=(
            LayerGroup(1, Attention(**oss, kind="sliding", window=32), MoE(8, 2, 96, bias=True, router_bias=True)),
            LayerGroup(1, Attention(**oss), MoE(8, 2, 96, bias=True, router_bias=True)))),
        "deepseek-v4-reduced": read_hf_config(ROOT / "tests" / "data" / "hf_configs" / "DeepSeek-V4-reduced"
                                              / "config.json"),
    }


def memory_grid(device_kind: str, quick: bool, shapes: dict | None = None) -> list[dict]:
    from llmplan.bench.device import detect_device
    from llmplan.bench.runner import BenchConfig, run_config

    dtypes = ("fp32",) if quick else ("fp32", "bf16")
    sizes = ((2, 64),) if quick else ((1, 64), (4, 128), (2, 256))
    rows = []
    for dtype in dtypes:
        device = detect_device(device_kind, dtype=dtype)
        for (shape, spec), (batch, seq), attention, recompute in itertools.product(
                (shapes or SHAPES).items(), sizes, ("flash", "eager"), ("none", "selective", "full")):
            cfg = BenchConfig(spec, batch=batch, seq=seq, attention=attention, recompute=recompute,
                              warmup_steps=1, timed_steps=1)
            r = run_config(cfg, device)
            act_m = (r.measured_breakdown or {}).get("activations")
            act_p = (r.predicted_breakdown or {}).get("activations")
            rows.append({"shape": shape, "dtype": dtype, "batch": batch, "seq": seq, "attention": attention,
                         "recompute": recompute, "measured": r.peak_bytes_measured,
                         "predicted": r.peak_bytes_predicted, "error_pct": r.memory_error_pct,
                         "act_measured": act_m, "act_predicted": act_p,
                         "act_error_pct": (act_p / act_m - 1) * 100 if act_m and act_p else None})
    return rows


def _dense_windows(spec):
    """The spec with every window widened to full attention: what a masked eager kernel multiplies. DeepSeek-V4's
    compressed attention is left as it is (a window is part of what defines it)."""
    from dataclasses import replace

    from llmplan.models.layers_v4 import CompressedAttention

    if not spec.groups:
        return spec
    return spec.with_(groups=tuple(replace(g, mixer=replace(g.mixer, kind="full", window=0))
                                   if g.attention is not None and not isinstance(g.mixer, CompressedAttention)
                                   else g for g in spec.groups))


def flops_grid(quick: bool, shapes: dict | None = None) -> list[dict]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from llmplan.bench.model import build_model
    from llmplan.estimate.flops import train_flops_per_token

    rows = []
    sizes = ((2, 64),) if quick else ((1, 64), (4, 128), (2, 256))
    for (shape, spec), (batch, seq) in itertools.product((shapes or SHAPES).items(), sizes):
        torch.manual_seed(0)
        model = build_model(spec, attention="eager")
        tokens = torch.randint(0, spec.vocab, (batch, seq))
        with FlopCounterMode(display=False) as counter:
            model(tokens, tokens).backward()
        counted = counter.get_total_flops()
        predicted = train_flops_per_token(spec, seq) * batch * seq
        vector = sum(p.numel() for p in model.parameters() if p.ndim == 1)
        adjusted = predicted - 6 * vector * batch * seq
        dense = train_flops_per_token(_dense_windows(spec), seq) * batch * seq - 6 * vector * batch * seq
        rows.append({"shape": shape, "batch": batch, "seq": seq, "counted": counted, "predicted": predicted,
                     "error_pct": (predicted / counted - 1) * 100,
                     "adjusted_error_pct": (adjusted / counted - 1) * 100,
                     "dense_error_pct": (dense / counted - 1) * 100})
    return rows


def markdown(mem: list[dict], flops: list[dict], device_kind: str, blocks: bool = False, quick: bool = False) -> str:
    errors = [abs(r["error_pct"]) for r in mem if r["error_pct"] is not None]
    act = [abs(r["act_error_pct"]) for r in mem if r["act_error_pct"] is not None]
    what = "max_memory_allocated" if device_kind == "cuda" else "counted bytes"
    lines = [
        f"Measured {date.today().isoformat()} with `python benchmarks/accuracy.py --device {device_kind}"
        f"{' --blocks' if blocks else ''}{' --quick' if quick else ''}` on "
        f"{platform.machine()}, Python {platform.python_version()}, torch {_torch_version()}. Memory: llmplan's "
        f"prediction against {what}; {len(mem)} configurations; error median {statistics.median(errors):.2f}%, "
        f"largest {max(errors):.2f}% (target: within 10% on the CPU). The activations alone (tensors saved for "
        f"backward, which the tiny models' weights and optimizer states would otherwise hide): median "
        f"{statistics.median(act):.2f}%, largest {max(act):.2f}%.",
        "",
        "| shape | dtype | batch x seq | attention | recompute | measured (MiB) | predicted (MiB) | error | "
        "activations measured (MiB) | predicted (MiB) | error |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in mem:
        err = "-" if r["error_pct"] is None else f"{r['error_pct']:+.2f}%"
        pred = "-" if r["predicted"] is None else f"{r['predicted'] / 2**20:.2f}"
        act_err = "-" if r["act_error_pct"] is None else f"{r['act_error_pct']:+.2f}%"
        act_pred = "-" if r["act_predicted"] is None else f"{r['act_predicted'] / 2**20:.3f}"
        lines.append(f"| {r['shape']} | {r['dtype']} | {r['batch']} x {r['seq']} | {r['attention']} | "
                     f"{r['recompute']} | {r['measured'] / 2**20:.2f} | {pred} | {err} | "
                     f"{r['act_measured'] / 2**20:.3f} | {act_pred} | {act_err} |")
    lines += ["", "FLOPs of one training step (eager attention), llmplan against FlopCounterMode; 'adjusted' removes "
              "the bias and norm FLOPs that FlopCounterMode does not count.", "",
              "| shape | batch x seq | FlopCounterMode | llmplan | error | adjusted error |"
              + (" windows as full attention, adjusted |" if blocks else ""),
              "|---|---|---:|---:|---:|---:|" + ("---:|" if blocks else "")]
    for r in flops:
        lines.append(f"| {r['shape']} | {r['batch']} x {r['seq']} | {r['counted']:.4g} | {r['predicted']:.4g} | "
                     f"{r['error_pct']:+.2f}% | {r['adjusted_error_pct']:+.4f}% |"
                     + (f" {r['dense_error_pct']:+.4f}% |" if blocks else ""))
    return "\n".join(lines)


def _torch_version() -> str:
    import torch

    return torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="a small grid (seconds)")
    parser.add_argument("--blocks", action="store_true", help="current-architecture blocks instead of dense shapes")
    parser.add_argument("--write", type=Path, help="a markdown file with a `cpu` (or `gpu-accuracy`, `blocks`) "
                        "section")
    args = parser.parse_args()
    shapes = block_shapes() if args.blocks else None
    text = markdown(memory_grid(args.device, args.quick, shapes), flops_grid(args.quick, shapes), args.device,
                    args.blocks, args.quick)
    print(text)
    if args.write:
        name = "blocks" if args.blocks else ("cpu" if args.device == "cpu" else "gpu-accuracy")
        write_section(args.write, name, text)


if __name__ == "__main__":
    main()
