"""`llmplan memory`: per-GPU memory for training, fine-tuning and inference, and whether it fits a GPU."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Optional

import typer

from llmplan.cli.app import command_app
from llmplan.cli.common import (ARCH_OPTION, JSON_OPTION, MODEL_OPTION, PARAMS_OPTION, gpus_from_options,
                                model_from_options)
from llmplan.errors import LlmplanError
from llmplan.estimate.flops import PRETRAIN_SEQ_CAP
from llmplan.estimate.gpu_fit import fit_on_gpu
from llmplan.estimate.memory import (DEFAULT_HEADROOM, DEFAULT_LORA_RANK, DTYPES, KV_DTYPES,
                                     MemoryConfig, estimate_memory, validate)
from llmplan.estimate.shapes import LINEAR_MODULES
from llmplan.hardware import parse_gpu
from llmplan.report.output import emit_json, kv_table, note, stdout_console, warn
from llmplan.units import format_bytes, format_count, parse_bytes, parse_dtype, parse_int_count, parse_seq

_LORA_GROUPS = {"all": LINEAR_MODULES, "all-linear": LINEAR_MODULES, "attention": ("q", "k", "v", "o"),
                "mlp": ("gate", "up", "down")}
_ALIASES = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
            "down_proj": "down"}


def parse_headroom(text: str) -> tuple[float, int]:
    """'5%' or '0.05' (a fraction of the GPU's memory) or '2GiB' (bytes): (fraction, bytes)."""
    raw = str(text).strip()
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", raw)
    if m:
        frac = float(m.group(1)) / 100
    elif re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)", raw):
        frac = float(raw)
    else:
        return 0.0, parse_bytes(raw, "--headroom", allow_zero=True)
    if not 0 <= frac < 1:
        raise LlmplanError(f"--headroom must be a fraction in [0, 1), a percentage or a size like 2GiB, got {text!r}")
    return frac, 0


def parse_targets(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in (p.strip().lower() for p in str(text).split(",") if p.strip()):
        mods = _LORA_GROUPS.get(part) or (_ALIASES.get(part, part),)
        for m in mods:
            if m not in LINEAR_MODULES:
                raise LlmplanError(f"unknown LoRA target {part!r}; accepted: {', '.join(LINEAR_MODULES)}, "
                                   f"{', '.join(_LORA_GROUPS)} (comma-separated)")
            if m not in out:
                out.append(m)
    if not out:
        raise LlmplanError("--lora-targets is empty; give e.g. q,v or all")
    return tuple(out)


def _choice(value: str, option: str, accepted: tuple[str, ...]) -> str:
    v = str(value).strip().lower()
    if v not in accepted:
        raise LlmplanError(f"unknown {option} {value!r}; accepted: {', '.join(accepted)}")
    return v


def _zero(text: str) -> int:
    if str(text).strip() not in ("0", "1", "2", "3"):
        raise LlmplanError(f"--zero must be 0, 1, 2 or 3 (3 is FSDP full sharding), got {text!r}")
    return int(text)


app = command_app()


@app.command("memory")
def memory(
    model: Optional[str] = MODEL_OPTION,
    params: Optional[str] = PARAMS_OPTION,
    arch: str = ARCH_OPTION,
    mode: str = typer.Option("train", "--mode", help="train | finetune (full) | lora | qlora | infer."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32 | fp16 | bf16 | int8 | int4 | fp8 (default "
                                        "bf16). Training: fp32 is pure fp32, fp16/bf16/fp8 mixed precision with "
                                        "fp32 master weights. LoRA/inference: the base weights' format (int4/int8 "
                                        "with their scales); inference defaults to the checkpoint's stored format "
                                        "where the model has one (DeepSeek-V3 fp8, gpt-oss MXFP4 experts)."),
    batch: str = typer.Option("1", "--batch", "-b", help="Micro-batch per GPU (sequences)."),
    seq: Optional[str] = typer.Option(None, "--seq", "-s", help="Sequence length (inference: prompt + generated "
                                      "tokens); 32k is 32,768. Default: the model's context (training and "
                                      "fine-tuning: at most 8192)."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | adam8bit | sgd | sgd-momentum | adafactor "
                                  "| lion."),
    recompute: str = typer.Option("none", "--recompute", help="Activation recomputation: none | selective | full."),
    attention: str = typer.Option("flash", "--attention", help="flash (no s x s scores kept) | eager."),
    dp: Optional[str] = typer.Option(None, "--dp", help="Data-parallel GPUs (default 1)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="GPUs in all: --dp x --tp x --pp (give this or --dp)."),
    zero: str = typer.Option("0", "--zero", help="ZeRO stage 0 | 1 | 2 | 3 (shards optimizer, +gradients, "
                             "+parameters over --dp)."),
    fsdp: bool = typer.Option(False, "--fsdp", help="FSDP full sharding (= --zero 3)."),
    tp: str = typer.Option("1", "--tp", help="Tensor-parallel GPUs (must divide the attention heads)."),
    pp: str = typer.Option("1", "--pp", help="Pipeline stages (must divide the layers)."),
    ep: str = typer.Option("1", "--ep", help="Expert parallelism: routed experts split over N GPUs (must divide "
                           "the experts; training: drawn from --dp, which must be a multiple of N)."),
    sp: bool = typer.Option(False, "--sp", help="Sequence parallelism with --tp (Korthikanti et al. 2022)."),
    offload: str = typer.Option("none", "--offload", help="none | optimizer | params: what moves to CPU memory."),
    lora_rank: str = typer.Option(str(DEFAULT_LORA_RANK), "--lora-rank", help="LoRA rank r."),
    lora_targets: str = typer.Option("all", "--lora-targets", help="Modules with adapters, comma-separated: "
                                     "q,k,v,o,gate,up,down (MLA: q adapts q_a/q_b, k and v kv_a/kv_b; experts "
                                     "too), in_proj,out_proj (Mamba-2/DeltaNet), or all | attention | mlp."),
    adapter_dtype: str = typer.Option("fp32", "--adapter-dtype", help="LoRA adapter weights and gradients: fp32 "
                                      "(PEFT's default) | bf16 (the QLoRA reference script) | fp16."),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help="KV cache format (default: bf16, fp32 for "
                                           "--dtype fp32)."),
    beams: str = typer.Option("1", "--beams", help="Beam-search width (multiplies the KV cache)."),
    grad_dtype: str = typer.Option("auto", "--grad-dtype", help="auto (ZeRO paper: gradients in the training "
                                   "dtype) | fp32 (Megatron's fp32 gradient accumulation) | bf16 | fp16."),
    amp: bool = typer.Option(False, "--amp", help="PyTorch autocast convention (e.g. Hugging Face Trainer --bf16): "
                             "fp32 weights and gradients, 16-bit weight copies, fp32 residual stream."),
    dropout: Optional[bool] = typer.Option(None, "--dropout/--no-dropout", help="Keep dropout masks (default: as "
                                           "the model family trains: GPT/BERT/T5 yes, LLaMA-style no)."),
    impl: str = typer.Option("fused", "--impl", help="Activation accounting: fused (Megatron-style kernels, "
                             "Korthikanti et al.) | pytorch (plain PyTorch ops, as llmplan's bench model, on the CPU) "
                             "| pytorch-cuda (the same ops on a GPU)."),
    quant_group: Optional[str] = typer.Option(None, "--quant-group", help="int4 quantization group size "
                                              "(default 128, one fp16 scale per group)."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="Does it fit on this GPU, and on how many? A catalog name "
                                      "(see `llmplan hardware`) or a memory size (48GiB, 24GB)."),
    headroom: str = typer.Option(f"{DEFAULT_HEADROOM:.0%}", "--headroom", help="Memory left free when judging a "
                                 "fit: a percentage, a fraction or a size (5%, 0.1, 2GiB)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="auto | PATH: use the runtime overhead measured "
                                          "by `llmplan bench` instead of the default."),
    decimal: bool = typer.Option(False, "--decimal", help="Show memory in decimal GB instead of GiB."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Per-GPU memory of a training, fine-tuning or inference plan, with its breakdown and whether it fits a GPU.

    Weights, gradients, optimizer states (ZeRO, FSDP, offload), activations, KV cache and overhead, each per GPU.

    Examples:

      llmplan memory --model llama-2-7b --gpu h100

      llmplan memory --params 7.5B --dtype fp16 --dp 64 --zero 3 --decimal

      llmplan memory --model llama-3-70b --zero 3 --dp 8 --recompute full --seq 4096 --gpu h100

      llmplan memory --model llama-2-7b --mode qlora --lora-rank 64 --seq 2048 --gpu rtx4090

      llmplan memory --model mistral-7b --mode infer --seq 32k --batch 8 --kv-dtype fp8 --json

      llmplan memory --model mixtral-8x7b --dp 8 --ep 8 --zero 1 --seq 4096 --gpu h100
    """
    spec = model_from_options(model, params, arch)
    zero_stage = _zero(zero)
    if fsdp:
        if zero_stage not in (0, 3):
            raise LlmplanError(f"--fsdp is full sharding (ZeRO stage 3); it conflicts with --zero {zero_stage}")
        zero_stage = 3
    frac, room_bytes = parse_headroom(headroom)
    tp_pp = parse_int_count(tp, "--tp") * parse_int_count(pp, "--pp")
    mode = _choice(mode, "--mode", ("train", "finetune", "lora", "qlora", "infer"))
    capped = seq is None and mode != "infer" and spec.context > PRETRAIN_SEQ_CAP
    cfg = MemoryConfig(
        spec=spec, mode=mode,
        dtype=parse_dtype(dtype, DTYPES) if dtype else "bf16", batch=parse_int_count(batch, "--batch"),
        seq=parse_seq(seq, "--seq") if seq is not None else (PRETRAIN_SEQ_CAP if capped else None),
        optimizer=_choice(optimizer, "--optimizer", ("adamw", "adam8bit", "sgd", "sgd-momentum", "adafactor", "lion")),
        recompute=_choice(recompute, "--recompute", ("none", "selective", "full")),
        attention=_choice(attention, "--attention", ("flash", "eager")),
        dp=gpus_from_options(gpus, dp, tp_pp) // tp_pp, zero=zero_stage, tp=parse_int_count(tp, "--tp"),
        pp=parse_int_count(pp, "--pp"), ep=parse_int_count(ep, "--ep"), sp=sp,
        offload=_choice(offload, "--offload", ("none", "optimizer", "params")),
        lora_rank=parse_int_count(lora_rank, "--lora-rank"), lora_targets=parse_targets(lora_targets),
        adapter_dtype=_choice(adapter_dtype, "--adapter-dtype", ("fp32", "bf16", "fp16")),
        kv_dtype=parse_dtype(kv_dtype, KV_DTYPES) if kv_dtype else None, beams=parse_int_count(beams, "--beams"),
        grad_dtype=_choice(grad_dtype, "--grad-dtype", ("auto", "fp32", "bf16", "fp16")), amp=amp, dropout=dropout,
        impl=_choice(impl, "--impl", ("fused", "pytorch", "pytorch-cuda")),
        quant_group=parse_int_count(quant_group, "--quant-group") if quant_group else None,
        stored_weights=dtype is None,
    )
    gpu_obj = parse_gpu(gpu) if gpu else None
    profile_path = None
    if profile:
        from llmplan.calibration import load_profile

        prof = load_profile(profile, gpu_obj.name if gpu_obj and gpu_obj.vendor else None)
        profile_path = prof.path
        if prof.overhead_bytes is None:
            warn(f"the profile {prof.path} has no measured overhead; using the default")
        else:
            cfg = replace(cfg, measured_overhead_bytes=prof.overhead_bytes,
                          overhead_source=f"{format_bytes(prof.overhead_bytes)} on {prof.device_name} ({prof.path})")
    cfg = validate(cfg)
    est = estimate_memory(cfg)
    fit = fit_on_gpu(cfg, gpu_obj.memory_bytes, frac, room_bytes) if gpu_obj else None
    if capped:  # the rule compute follows for its FLOPs (llmplan.estimate.flops.PRETRAIN_SEQ_CAP)
        note(f"activations for sequences of {PRETRAIN_SEQ_CAP:,} tokens, not {spec.name}'s full context of "
             f"{spec.context:,} (models are trained short and extended at the end); pass --seq to choose")
    if cfg.tp == 1 and sp:
        note("--sp has no effect without --tp")
    if cfg.zero and cfg.dp == 1:
        note(f"--zero {cfg.zero} with --dp 1 shards nothing; give --dp N (the data-parallel GPUs)")
    payload = _payload(spec.name, cfg, est, gpu_obj, fit, frac, room_bytes, profile_path)
    if as_json:
        emit_json(payload)
        return
    _render(spec.name, cfg, est, gpu_obj, fit, decimal, headroom_text(frac, room_bytes, decimal))


def _payload(name, cfg, est, gpu, fit, frac, room_bytes, profile_path) -> dict:
    out = {
        "model": name, "params": est.params, "trainable_params": est.trainable_params,
        "total_bytes": est.total_bytes, "allocated_bytes": est.allocated_bytes,
        "model_states_bytes": est.model_states_bytes, "breakdown": est.breakdown, "cpu_bytes": est.cpu_bytes,
        "stage": est.stage, "activation_detail": est.activation_detail,
        "activation_terms_per_layer": dict(est.activation_terms), "weights_by_dtype": est.weights_by_dtype,
        "rule_of_thumb": {"bytes": est.rule_of_thumb_bytes, "rule": est.rule_of_thumb},
        "config": {"mode": cfg.mode, "dtype": cfg.dtype, "batch": cfg.batch, "seq": est.seq,
                   "optimizer": cfg.optimizer, "recompute": cfg.recompute, "attention": cfg.attention, "dp": cfg.dp,
                   "gpus": cfg.dp * cfg.tp * cfg.pp,
                   "zero": cfg.zero, "tp": cfg.tp, "pp": cfg.pp, "ep": cfg.ep, "sp": cfg.sp, "offload": cfg.offload,
                   "lora_rank": cfg.lora_rank if cfg.mode in ("lora", "qlora") else None,
                   "lora_targets": list(cfg.lora_targets) if cfg.mode in ("lora", "qlora") else None,
                   "adapter_dtype": cfg.adapter_dtype if cfg.mode in ("lora", "qlora") else None,
                   "kv_dtype": cfg.kv_dtype, "beams": cfg.beams, "grad_dtype": cfg.grad_dtype, "amp": cfg.amp,
                   "dropout": cfg.dropout, "impl": cfg.impl},
        "layer_kinds": est.layer_kinds,
        "activation_layers": [{"layers": n, "make": label, "bytes_per_layer": b}
                              for label, n, b in est.activation_layers],
        "weight_format": (cfg.spec.weight_format.label if cfg.stored_weights and cfg.mode == "infer"
                          and cfg.spec.weight_format else cfg.dtype),
        "profile": profile_path,
        "assumptions": list(est.assumptions),
    }
    if gpu is not None:
        out.update({"gpu": gpu.name, "gpu_memory_bytes": gpu.memory_bytes, "headroom": frac,
                    "headroom_bytes": room_bytes, "usable_bytes": fit.usable_bytes,
                    "spare_bytes": fit.usable_bytes - est.total_bytes, "fits": fit.fits,
                    "gpus_needed": fit.gpus_needed, "plan": fit.plan, "suggestion": fit.suggestion,
                    "remedies": [{"options": r.options, "gpus": r.gpus} for r in fit.remedies]})
    return out


def headroom_text(frac: float, room_bytes: int, decimal: bool = False) -> str:
    return format_bytes(room_bytes, decimal=decimal) if room_bytes else f"{frac:.0%}"


def _render(name, cfg, est, gpu, fit, decimal: bool, headroom: str = "") -> None:
    console = stdout_console()

    def fb(n) -> str:
        return format_bytes(n, decimal=decimal)

    labels = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer states",
              "activations": "activations", "kv_cache": "KV cache", "state": "recurrent state",
              "overhead": "runtime overhead"}
    kinds = est.layer_kinds
    attn = {k: n for k, n in kinds.items() if k not in ("mamba2", "gated_deltanet")}
    rec = {k: n for k, n in kinds.items() if k in ("mamba2", "gated_deltanet")}
    if attn:
        labels["kv_cache"] = f"KV cache ({_kinds_text(attn)})"
    if rec:
        labels["state"] = f"recurrent state ({_kinds_text(rec)})"
    rows = []
    for k, v in est.breakdown.items():
        if k == "state" and not v and not rec:
            continue
        rows.append((labels[k], fb(v)))
        if k == "activations" and v:
            rows += _activation_rows(cfg, est, fb)
    rows.append(("total per GPU", fb(est.total_bytes)))
    if est.cpu_bytes:
        rows.append(("CPU memory (offload, per GPU)", fb(est.cpu_bytes)))
    stage = "" if est.stage == "only" else f", {est.stage} pipeline stage"
    dtype = f"NF4 weights, {cfg.dtype} compute" if cfg.mode == "qlora" else cfg.dtype  # QLoRA: 4-bit NormalFloat
    console.print(f"[bold]{name}[/bold]: {cfg.mode}, {format_count(est.params)} params "
                  f"({format_count(est.trainable_params)} trainable), {dtype}, micro-batch {cfg.batch} x "
                  f"seq {est.seq}{stage}")
    console.print(kv_table("Memory per GPU", rows))
    w = est.weights_by_dtype
    ref = [(f"weights in {d}", fb(w[d])) for d in ("fp32", "bf16", "int8", "int4")]
    if est.rule_of_thumb_bytes:
        ref.append(("rule of thumb", fb(est.rule_of_thumb_bytes)))
    console.print(kv_table("For comparison", ref))
    console.print("[dim]Weights alone: the whole model's values, no scales, no sharding.[/dim]")
    if est.rule_of_thumb_bytes:
        console.print(f"Rule of thumb: {est.rule_of_thumb}. " + _difference(cfg, est, fb))
    if gpu is not None:
        margin = fit.usable_bytes - est.total_bytes
        verdict = (f"[green]fits[/green], {fb(margin)} to spare" if fit.fits
                   else f"[red]does not fit[/red], {fb(-margin)} short")
        console.print(f"{gpu.name} ({fb(gpu.memory_bytes)}, usable {fb(fit.usable_bytes)} after {headroom} "
                      f"headroom): {verdict}")
        if fit.remedies:
            console.print(kv_table("What would make it fit (GPUs in all)",
                                   [(r.options, str(r.gpus)) for r in fit.remedies]))
        if fit.gpus_needed:
            console.print(f"fewest GPUs that fit: {fit.gpus_needed} ({fit.plan})")
        elif fit.suggestion:
            console.print(fit.suggestion)
    for a in est.assumptions:
        console.print(f"[dim]assumption:[/dim] {a}")


def _kinds_text(kinds: dict[str, int]) -> str:
    """'21 sliding + 21 full layers', '61 MLA layers'."""
    names = {"mla": "MLA", "mamba2": "Mamba-2", "gated_deltanet": "DeltaNet"}
    return " + ".join(f"{n} {names.get(k, k)}" for k, n in kinds.items()) + " layers"


def _activation_rows(cfg, est, fb) -> list[tuple[str, str]]:
    """The parts of the activations line, so that a person can check them against the formulas."""
    d = est.activation_detail
    if cfg.mode == "infer":
        return [("  prefill working set (one layer, transient)", fb(d.get("prefill_working_set", 0)))]
    layers, pp = cfg.spec.total_layers, cfg.pp
    if pp > 1:
        first, last = " (first stage)", " (last stage)"
        layer_label = f"  one layer, one micro-batch ({layers // pp} layers x {pp} in flight)"
    else:
        first = last = ""
        layer_label = f"  one layer, one micro-batch (x {layers} layers)"
    if est.activation_layers:  # layers differ (Gemma's local/global, DeepSeek's dense first layers, hybrids)
        rows = [(f"  {n} x {label}, one micro-batch", fb(b)) for label, n, b in est.activation_layers]
    else:
        rows = [(layer_label, fb(d["per_layer"]))]
    out = rows + [("  embeddings" + first, fb(d["embeddings"])),
           ("  output layer and loss" + last, fb(d["output_and_loss"])),
           ("  logits during the loss (transient)" + last, fb(d["logits_transient"]))]
    if d.get("recompute_transient"):
        out.append(("  layer being recomputed (transient)", fb(d["recompute_transient"])))
    return out


def _difference(cfg, est, fb) -> str:
    """One sentence on where llmplan's count and the rule of thumb part ways."""
    b = est.breakdown
    if cfg.mode == "infer":
        return (f"The rule scales the weights; llmplan counts the KV cache ({fb(b['kv_cache'])}, growing with batch x "
                f"context) and the prefill working set ({fb(b['activations'])}) instead of a flat 20%.")
    per_param = est.model_states_bytes / max(est.params, 1)
    return (f"The rule is one GPU without sharding and a fixed activation allowance; llmplan counts model states at "
            f"{per_param:.3g} bytes/param on this GPU after sharding and activations for this batch and sequence "
            f"({fb(b['activations'])}), which the rule cannot see.")
