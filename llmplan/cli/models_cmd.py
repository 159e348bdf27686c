"""`llmplan models`: the presets, or one model's shape and exact parameter breakdown."""

from __future__ import annotations

from typing import Optional

import typer

from llmplan.cli.app import command_app
from llmplan.cli.common import ARCH_OPTION, JSON_OPTION, PARAMS_OPTION, model_from_options
from dataclasses import asdict

from llmplan.models import ModelSpec, count_params, load_presets
from llmplan.models.describe import layer_kinds, layer_summary
from llmplan.models.layers import group_dict
from llmplan.report.output import emit_json, kv_table, stdout_console, table
from llmplan.units import format_count


def model_summary(spec: ModelSpec) -> dict:
    """The JSON view of a model: counts, breakdown, layer make-up, shape, provenance."""
    b = count_params(spec)
    return {
        "name": spec.name,
        "arch": spec.arch,
        "params": b.total,
        "params_non_embedding": b.non_embedding,
        "params_active": b.active,
        "published_params": spec.published_params,
        "breakdown": b.as_dict(),
        "layers_summary": layer_summary(spec) if spec.arch != "encoder-decoder" else None,
        "layer_kinds": layer_kinds(spec) if spec.arch != "encoder-decoder" else [],
        "groups": [group_dict(g) for g in spec.layer_groups] if spec.arch != "encoder-decoder" else [],
        "mtp": {"layers": spec.mtp_layers, "params": b.mtp, "params_with_mtp": b.total_with_mtp},
        "weight_format": (dict(asdict(spec.weight_format), bytes_per_param=spec.weight_format.bytes_per_param)
                          if spec.weight_format else None),
        "shape": spec.shape_dict(),
        "source": spec.source,
        "assumptions": list(spec.assumptions),
    }


def _shape_rows(spec: ModelSpec, summary: dict) -> list[tuple[str, str]]:
    shape = {k: v for k, v in spec.shape_dict().items() if k not in ("groups", "weight_format")}
    rows = []
    if spec.groups:  # the flat head/ffn fields describe only the first layer: show the make-up instead
        rows.append(("layers", f"{spec.layers} ({summary['layers_summary']})"))
        keep = ("hidden", "vocab", "context", "position", "norm", "tied_embeddings", "activation")
        shape = {k: shape[k] for k in keep if k in shape}
    rows += [(k, str(v)) for k, v in shape.items() if v not in (0, False, None) or k in ("tied_embeddings",)]
    if spec.weight_format:
        rows.append(("stored weights", spec.weight_format.label))
    streams = max((g.hyper for g in spec.layer_groups), default=0)
    if streams:
        rows.append(("hyper-connections", f"{streams} residual streams"))
    if spec.mtp_layers:
        rows.append(("MTP modules", f"{spec.mtp_layers} (counted apart)"))
    return rows


app = command_app()


@app.command("models")
def models(
    name: Optional[str] = typer.Argument(None, help="A preset name or a path to a config.json; omit to list presets."),
    params: Optional[str] = PARAMS_OPTION,
    arch: str = ARCH_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List the model presets, or show one model's layer make-up and exact parameter breakdown (MoE active
    parameters, multi-token-prediction modules counted apart, the checkpoint's stored weight format).

    Examples:

      llmplan models

      llmplan models llama-2-7b

      llmplan models deepseek-v3

      llmplan models qwen3-next-80b-a3b --json

      llmplan models examples/Mistral-7B-v0.1/config.json --json

      llmplan models --params 13B
    """
    if name is None and params is None:
        presets = load_presets()
        rows = [model_summary(s) for s in presets.values()]
        if as_json:
            emit_json({"models": rows})
            return
        stdout_console().print(table(
            "Model presets (counts exact from the shape; decimal B = 1e9)",
            ["name", "arch", "params", "non-embedding", "active", "published"],
            [[r["name"], r["arch"], format_count(r["params"]), format_count(r["params_non_embedding"]),
              format_count(r["params_active"]),
              format_count(r["published_params"]) if r["published_params"] else "-"] for r in rows],
            right_align_from=2,
        ))
        return
    spec = model_from_options(name, params, arch)
    summary = model_summary(spec)
    if as_json:
        emit_json(summary)
        return
    console = stdout_console()
    kind = f"{spec.attention_kind} attention" if not spec.groups else "layers differ"
    console.print(kv_table(f"{spec.name}: shape ({spec.arch}, {kind})", _shape_rows(spec, summary)))
    kinds = summary["layer_kinds"]
    if spec.groups and kinds:
        console.print(table("Layer kinds", ["layers", "mixer", "attention / state", "feed-forward"],
                            [[str(k["count"]), k["mixer"], k["attention"], k["ffn"]] for k in kinds],
                            right_align_from=4))
    b = summary["breakdown"]
    rows = [(k.replace("_", " "), f"{v:,}") for k, v in b.items() if v]
    rows += [("total", f"{summary['params']:,}  ({format_count(summary['params'])})"),
             ("non-embedding", f"{summary['params_non_embedding']:,}"),
             ("active per token", f"{summary['params_active']:,}")]
    mtp = summary["mtp"]
    if mtp["params"]:
        rows.append(("with MTP", f"{format_count(summary['params'], 4)} (+{format_count(mtp['params'], 3)} MTP = "
                                 f"{format_count(mtp['params_with_mtp'], 4)})"))
    if spec.published_params:
        rows.append(("published", format_count(spec.published_params)))
    exact = spec.param_count is None  # a bare --params: the total is as stated, its parts from an inferred shape
    console.print(kv_table("Parameters (exact)" if exact else "Parameters (inferred: the stated total, split as "
                           "the inferred shape splits it)", rows))
    if spec.source:
        console.print(f"[dim]source: {spec.source}[/dim]")
    for a in spec.assumptions:
        console.print(f"[yellow]assumption:[/yellow] {a}")
