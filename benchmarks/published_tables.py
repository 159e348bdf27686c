"""Reproduce the published tables llmplan is checked against, with the error per row, and write docs/validation.md.

Tables: GPT-3 paper Table D.1 (training compute), Chinchilla Table 3 (compute-optimal sizes, Approach 1) and the
Approach 3 projection, the ZeRO paper's Figure 1 (model-state memory), Korthikanti et al. 2022 Table 2 (activation
memory per layer) and the Llama-2-7B KV cache. The published rows live beside the tests that check them; this
script reads them from there, so the two cannot drift.

Usage: python benchmarks/published_tables.py [--write docs/validation.md]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.startup import section_main  # noqa: E402
from llmplan.estimate.activations import ActivationConfig, layer_terms  # noqa: E402
from llmplan.estimate.flops import training_flops  # noqa: E402
from llmplan.estimate.laws import get_law  # noqa: E402
from llmplan.estimate.memory import MemoryConfig, estimate_memory, kv_cache_bytes  # noqa: E402
from llmplan.estimate.timecost import pflops_days  # noqa: E402
from llmplan.models import count_params, get_preset, spec_from_params  # noqa: E402
from llmplan.models.spec import ModelSpec  # noqa: E402
from llmplan.units import format_count  # noqa: E402
from tests.test_chinchilla_laws import GOPHER_BUDGET, TABLE3  # noqa: E402
from tests.test_compute_table_d1 import PRESET_ROWS, TABLE_D1  # noqa: E402


def pct(value: float, reference: float) -> str:
    return f"{(value / reference - 1) * 100:+.2f}%"


def table_d1() -> list[str]:
    presets = {row: preset for preset, row, _ in PRESET_ROWS}
    out = ["### GPT-3 paper, Table D.1 (Brown et al. 2020): training compute",
           "",
           "C = 6 N D (3 N D for the encoder-decoder T5); 1 PF/s-day = 8.64e19 FLOPs. 'printed N' uses the table's "
           "own parameter count; 'preset' uses llmplan's exact count from the model's shape.",
           "",
           "| model | params (printed) | tokens | PF/s-days (printed) | llmplan, printed N | error | preset | "
           "preset count | llmplan, preset | error |",
           "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for name, arch, params_m, tokens_b, _, pf_printed in TABLE_D1:
        pf = pflops_days(training_flops(spec_from_params(params_m * 1e6, arch), tokens_b * 1e9).six_nd)
        cells = [name, f"{params_m:,}M", f"{tokens_b:,}B", f"{pf_printed:.3g}", f"{pf:.4g}", pct(pf, pf_printed)]
        preset = presets.get(name)
        if preset:
            spec = get_preset(preset)
            pf_p = pflops_days(training_flops(spec, tokens_b * 1e9).six_nd)
            cells += [preset, f"{count_params(spec).total / 1e6:,.1f}M", f"{pf_p:.4g}", pct(pf_p, pf_printed)]
        else:
            cells += ["-", "-", "-", "-"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def table3() -> list[str]:
    rule20, hoffmann = get_law("rule20"), get_law("hoffmann")
    out = ["### Chinchilla, Table 3 (Hoffmann et al. 2022, Approach 1 projections)",
           "",
           "The 20 tokens-per-parameter rule against every row. The 67B row disagrees with itself: 5.76e23 FLOPs "
           "at 67B means 1.43T tokens, not the printed 1.5T.",
           "",
           "| params | FLOPs (printed) | tokens (printed) | rule20 FLOPs | error | rule20 N for the FLOPs | error |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for params, flops, tokens in TABLE3:
        f20 = 6 * params * rule20.optimal_tokens(params)
        n20, _ = rule20.optimal(flops)
        out.append(f"| {format_count(params)} | {flops:.3g} | {format_count(tokens, 4)} | {f20:.3g} | "
                   f"{pct(f20, flops)} | {format_count(n20)} | {pct(n20, params)} |")
    n3, d3 = hoffmann.optimal(GOPHER_BUDGET)
    out += ["", f"Approach 3 (unrounded constants) at Gopher's budget {GOPHER_BUDGET:.3g} FLOPs: "
            f"N_opt = {n3 / 1e9:.1f}B, D_opt = {d3 / 1e12:.2f}T (the paper: about 40B)."]
    return out


def zero_figure1() -> list[str]:
    out = ["### ZeRO paper, Figure 1 (Rajbhandari et al. 2019): model states per GPU",
           "",
           "7.5B parameters, 64 data-parallel GPUs, mixed-precision Adam (2 + 2 + 12 bytes per parameter).",
           "",
           "| stage | published (GB) | llmplan (GB) | error |",
           "|---|---:|---:|---:|"]
    spec = spec_from_params(7.5e9)
    for stage, published in ((0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)):
        est = estimate_memory(MemoryConfig(spec=spec, dtype="fp16", optimizer="adamw", dp=64, zero=stage))
        gb = est.model_states_bytes / 1e9
        out.append(f"| {stage or 'baseline'} | {published} | {gb:.3f} | {pct(gb, published)} |")
    return out


def korthikanti() -> list[str]:
    out = ["### Korthikanti et al. 2022, Table 2: activation memory per layer",
           "",
           "A GPT-3 175B layer (h 12288, a 96), s 2048, b 1, 16-bit, dropout; t = tensor-parallel size. llmplan's "
           "per-tensor accounting, less the LayerNorm statistics the paper leaves out, against the formula.",
           "",
           "| configuration | t | formula (MiB) | llmplan (MiB) | error |",
           "|---|---:|---:|---:|---:|"]
    h, a, s, b = 12288, 96, 2048, 1
    spec = ModelSpec(name="gpt3-layer", arch="decoder", layers=1, hidden=h, heads=a, ffn=4 * h, vocab=51200,
                     context=s, qkv_bias=True, out_bias=True, mlp_bias=True)
    sbh = s * b * h
    cases = [
        ("no parallelism", 1, {}, sbh * (34 + 5 * a * s / h)),
        ("tensor parallel", 8, {}, sbh * (10 + 24 / 8 + 5 * a * s / (h * 8))),
        ("tensor + sequence parallel", 8, {"sp": True}, sbh / 8 * (34 + 5 * a * s / h)),
        ("tensor + selective recompute", 8, {"recompute": "selective"}, sbh * (10 + 24 / 8)),
        ("tensor + sequence + selective", 8, {"sp": True, "recompute": "selective"}, 34 * sbh / 8),
        ("full recompute", 1, {"recompute": "full"}, 2 * sbh),
    ]
    for label, t, extra, formula in cases:
        c = ActivationConfig(seq=s, batch=b, bytes_per_value=2, attention="eager", dropout=True, tp=t, **extra)
        ours = sum(x.bytes for x in layer_terms(spec, c) if not x.name.endswith("_stats"))
        out.append(f"| {label} | {t} | {formula / 2**20:,.1f} | {ours / 2**20:,.1f} | {pct(ours, formula)} |")
    return out


def kv_cache() -> list[str]:
    spec = get_preset("llama-2-7b")
    got = kv_cache_bytes(spec, tokens=4096, batch=1, kv_dtype="bf16")
    return ["### KV cache", "",
            f"Llama-2-7B, 4096 tokens, batch 1, bf16: published exactly 2 GiB; llmplan {got / 2**30:g} GiB "
            f"({got:,} bytes)."]


def render() -> str:
    parts = [table_d1(), table3(), zero_figure1(), korthikanti(), kv_cache()]
    header = ["Generated by `python benchmarks/published_tables.py --write docs/validation.md`.", ""]
    return "\n".join(header + [line for part in parts for line in (*part, "")]).rstrip()


def main() -> None:
    section_main(__doc__, "published", render)


if __name__ == "__main__":
    main()
