"""Sample AIConfigurator's measured GEMM and NCCL tables into benchmarks/data/ (run once, by hand).

Source: ai-dynamo/aiconfigurator (Apache-2.0), aic-core/src/aiconfigurator_core/systems/data/<gpu>/gemm/<framework>/
<version>/gemm_perf.parquet: latency in ms of one GEMM (y = x W^T, x: m x k, W: n x k) measured by its collectors
on each GPU (TensorRT-LLM's torch flow: cuBLAS/CUTLASS; fp8 is per-tensor fp8 with the activation quantized in the
call, nvfp4 the same with block scales). A grid of m, n, k is kept (about 900 shapes per GPU and format) so that
benchmarks/gemm_check.py and its test run without pyarrow or the checkout. And .../<gpu>/comm/nccl/<version>/
nccl_perf.parquet: nccl-tests (all_reduce_perf, all_gather_perf, reduce_scatter_perf, alltoall_perf; one process,
-t ranks threads, 40 warm-up and 60-100 timed iterations, out-of-place time) on 2, 4 and 8 GPUs of one NVLink
node, 512 B to 512 MB (collector/network/collect_nccl.py: message_size is bytes / 2 for half), into
measured_collectives.csv for benchmarks/collectives_check.py. And .../<gpu>/moe/trtllm/<version>/moe_perf.parquet:
TensorRT-LLM's fused MoE (CUTLASS kernels: permute, the experts' grouped GEMMs, activation, unpermute) for balanced
routing, bf16 and per-tensor fp8, at a few token counts, into measured_moe.csv for benchmarks/moe_check.py. And
.../<gpu>/attention/trtllm/<version>/generation_attention_perf.parquet: TensorRT-LLM's decode attention (one query
token per sequence over a paged KV cache of `step` + 1 tokens), full attention, bf16 and fp8 KV, into
measured_decode_attention.csv for benchmarks/decode_attention_check.py.

Usage: python benchmarks/extract_aiconfigurator.py <aiconfigurator checkout or git mirror> (needs pandas+pyarrow)
"""

from __future__ import annotations

import csv
import subprocess
import sys
from io import BytesIO
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "measured_gemms.csv"
OUT_NCCL = Path(__file__).resolve().parent / "data" / "measured_collectives.csv"
OUT_MOE = Path(__file__).resolve().parent / "data" / "measured_moe.csv"
OUT_DECODE = Path(__file__).resolve().parent / "data" / "measured_decode_attention.csv"
MOE = (("h100_sxm", "1.3.0rc20", "H100-SXM"), ("h200_sxm", "1.3.0rc20", "H200"))
MOE_TOKENS = {1, 16, 128, 1024, 4096, 16384}
DECODE = MOE  # the same GPUs and TensorRT-LLM version
DECODE_BATCH = {1, 16, 128, 1024}
DECODE_STEP = {127, 1023, 8191, 32767, 131071}
DATA = "aic-core/src/aiconfigurator_core/systems/data"
# (directory, framework, version, our catalog name): the newest TensorRT-LLM table of each GPU
TABLES = (("a100_sxm", "trtllm", "1.0.0", "A100-80GB"), ("h100_sxm", "trtllm", "1.3.0rc20", "H100-SXM"),
          ("h200_sxm", "trtllm", "1.3.0rc20", "H200"), ("b200_sxm", "trtllm", "1.3.0rc20", "B200"),
          ("b300_sxm", "trtllm", "1.3.0rc20", "B300"), ("gb200", "trtllm", "1.3.0rc20", "GB200-NVL72"),
          ("l40s", "trtllm", "1.3.0rc20", "L40S"))
DTYPES = {"bfloat16": "bf16", "fp8": "fp8", "nvfp4": "fp4"}
NCCL = (("a100_sxm", "2.27.3", "A100-80GB"), ("h100_sxm", "2.29.2", "H100-SXM"), ("h200_sxm", "2.29.2", "H200"),
        ("b200_sxm", "2.29.2", "B200"))
M = {1, 4, 16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768}
NK = {512, 1024, 2048, 4096, 6144, 8192, 12288, 16384, 65536}


def _read(root: Path, rel: str) -> bytes:
    path = root / rel
    if path.exists():
        return path.read_bytes()
    return subprocess.run(["git", "-C", str(root), "show", f"HEAD:{rel}"], check=True, capture_output=True).stdout


def _write(path: Path, header: tuple, rows: list) -> None:
    rows = sorted(set(rows))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    print(f"{len(rows)} rows -> {path}")


def main() -> None:
    import pandas as pd

    root = Path(sys.argv[1])
    rows = []
    for directory, framework, version, gpu in TABLES:
        d = pd.read_parquet(BytesIO(_read(root, f"{DATA}/{directory}/gemm/{framework}/{version}/gemm_perf.parquet")))
        d = d[d.gemm_dtype.isin(DTYPES) & d.m.isin(M) & d.n.isin(NK) & d.k.isin(NK) & (d.kernel_source == "torch_flow")]
        d = d.groupby(["gemm_dtype", "m", "n", "k"], as_index=False).latency.median()
        for r in d.itertuples():
            rows.append((gpu, DTYPES[r.gemm_dtype], r.m, r.n, r.k, f"{r.latency:.5g}"))
    _write(OUT, ("gpu", "dtype", "m", "n", "k", "latency_ms"), rows)
    nccl = []
    for directory, version, gpu in NCCL:
        d = pd.read_parquet(BytesIO(_read(root, f"{DATA}/{directory}/comm/nccl/{version}/nccl_perf.parquet")))
        for r in d[d.nccl_dtype == "half"].itertuples():
            nccl.append((gpu, f"nccl {version}", r.op_name, r.num_gpus, 2 * r.message_size, f"{r.latency * 1e-3:.5g}"))
    _write(OUT_NCCL, ("gpu", "library", "op", "ranks", "bytes", "seconds"), nccl)
    moe = []
    for directory, version, gpu in MOE:
        d = pd.read_parquet(BytesIO(_read(root, f"{DATA}/{directory}/moe/trtllm/{version}/moe_perf.parquet")))
        d = d[(d.kernel_source == "moe_torch_flow_cutlass") & (d.distribution == "balanced")
              & d.moe_dtype.isin(("bfloat16", "fp8")) & d.num_tokens.isin(MOE_TOKENS)]
        for r in d.itertuples():
            moe.append((gpu, DTYPES[r.moe_dtype], r.num_tokens, r.hidden_size, r.inter_size, r.topk, r.num_experts,
                        r.moe_tp_size, r.moe_ep_size, f"{r.latency * 1e-3:.5g}"))
    _write(OUT_MOE, ("gpu", "dtype", "tokens", "hidden", "inter", "top_k", "experts", "tp", "ep", "seconds"), moe)
    dec = []
    for directory, version, gpu in DECODE:
        d = pd.read_parquet(BytesIO(_read(
            root, f"{DATA}/{directory}/attention/trtllm/{version}/generation_attention_perf.parquet")))
        d = d[(d.window_size == 0) & d.batch_size.isin(DECODE_BATCH) & d.step.isin(DECODE_STEP)]
        for r in d.itertuples():
            dec.append((gpu, DTYPES[r.kv_cache_dtype], r.batch_size, r.step + 1, r.num_heads, r.num_key_value_heads,
                        r.head_dim, f"{r.latency * 1e-3:.5g}"))
    _write(OUT_DECODE, ("gpu", "kv_dtype", "batch", "context", "heads", "kv_heads", "head_dim", "seconds"), dec)


if __name__ == "__main__":
    main()
