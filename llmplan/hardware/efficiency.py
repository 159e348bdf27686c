"""Achievable fractions of a device's peaks: GEMMs by size, HBM streaming, the attention core, collectives.

Pure arithmetic (no torch, numpy or scipy). `efficiency_for(gpu, profile)` returns an `Efficiency`: documented
defaults per GPU family (below, each with its source), replaced point by point by what `llmplan bench` measured
when a calibration profile is given (keys "gemm_curve", "hbm_bytes_per_s", "attention", "collectives").

GEMM model (docs/methodology.md, "Step time"): a GEMM of M x N x K runs as output tiles of tm x tn on the SMs
(CUTLASS/cuBLAS tiling, NVIDIA "Matrix Multiplication Background User's Guide", sections "Tile quantization" and
"Wave quantization"). Its time is the larger of
- compute: 2MNK / (peak x large-GEMM fraction x tile-padding x wave-quantization x K-pipeline efficiency), and
- memory: (MK + KN + MN) x bytes / achievable HBM bandwidth (the roofline, Williams et al. 2009; this is what makes
  skinny GEMMs such as decode's small M slow),
plus a fixed launch cost. cuBLAS chooses among tile shapes: the model takes the fastest of the family's shapes.
fp8 and fp4 GEMMs add the cast of their activations (`Efficiency.quantize_seconds`). benchmarks/gemm_check.py
checks the model against 13,680 measured GEMMs (docs/validation.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmplan.units import DTYPE_BYTES

TIERS = ("scaleup", "scaleout")  # NVLink/NVSwitch (inside the NVLink domain), the NIC (between domains)


@dataclass(frozen=True)
class Family:
    """Default efficiencies of one GPU family, each with where it comes from."""

    name: str
    sms: int                   # streaming multiprocessors (compute units): the wave size of a GEMM
    tiles: tuple               # ((tm, tn, fraction of the large-tile rate), ...) cuBLAS-like tile shapes
    gemm_fraction: float       # tensor-pipe rate / dense peak (derived from `mamf` when one is published)
    hbm_fraction: float        # streaming copy: achieved / datasheet HBM bandwidth
    attention_fraction: float  # best flash-attention kernel, fwd+bwd core, head dim 128, long sequence / peak
    nvlink_domain_gpus: int    # defaults while the catalog lacks them (hardware catalog branch adds them)
    scaleup_bytes_per_s: float     # per GPU, one direction
    scaleout_bytes_per_s: float    # per GPU NIC, one direction
    source: str
    mamf: tuple = ()           # ((format, FLOP/s, peak FLOP/s of the GPU it was measured on, m, n, k), ...):
    # published best matmul rates and their shapes; the tensor pipe of each format is set to reproduce its own
    flash2_fraction: float = 0.0  # FlashAttention-2 where a newer kernel is the best (Hopper); 0: the same
    scaleup_fraction: float = 0.0  # measured ring bus bandwidth / NVLink per GPU; 0: NETWORK_FRACTION["scaleup"]
    nvls_fraction: float = 0.0     # NVLink SHARP all-reduce (NVSwitch 3+): measured algorithm bandwidth / NVLink


# Sources of the numbers (one line each; docs/methodology.md "Step time" lists them in full):
# - large-GEMM fraction: A100 cuBLAS bf16 8192^3 ~280 of 312 TFLOP/s (0.90; Calculon systems/a100_80g.json uses
#   0.95 for >= 128 GFLOP ops); H100 SXM cuBLAS bf16 ~740-800 of 989 at 700 W (0.75-0.8, clocks drop under
#   tensor load; Megatron-LM's 2024 H100 table reaches 0.47-0.49 end to end); B200 ~0.75 (same power-limited
#   regime, NVIDIA B200 MLPerf-era cuBLAS figures ~1.5 of 2.25 PFLOP/s bf16 dense).
# - HBM: STREAM-style copy reaches ~0.85-0.9 of the datasheet (A100 ~1.7-1.8 of 2.04 TB/s, H100 ~2.9 of 3.35).
# - attention: FlashAttention-2 fwd+bwd on A100, head dim 128, long sequence ~190 of 312 TFLOP/s (Dao 2023, Fig. 4:
#   0.6); FlashAttention-3 fwd 740 TFLOP/s bf16 on H100 (Shah et al. 2024: "75% utilization"), backward slower
#   (~0.55 combined); cuDNN fused attention, which Megatron/NeMo use on Hopper, is of the same order.
# - networks: NVLink3 300 GB/s and NVLink4 450 GB/s per direction per GPU, NVLink5 900 GB/s (NVIDIA datasheets);
#   one 200 Gb/s HDR (A100 DGX) or 400 Gb/s NDR (H100/B200 DGX) NIC per GPU = 25 / 50 GB/s.
_NV = "NVIDIA Matrix Multiplication Background User's Guide (tile and wave quantization)"
FAMILIES = {
    "A100": Family("A100", 108, ((256, 128, 1.0), (128, 128, 0.93), (128, 64, 0.8), (64, 64, 0.6)), 0.95, 0.87,
                   0.60, 8, 300e9, 25e9, f"A100 defaults: MAMF 267.9 TFLOP/s bf16 (Bekman), FlashAttention-2 0.6; {_NV}",
                   (("bf16", 267.9e12, 312e12, 6912, 16384, 2048),), scaleup_fraction=0.70),
    "H100": Family("H100", 132, ((128, 256, 1.0), (128, 128, 0.9), (128, 64, 0.75), (64, 64, 0.55)), 0.90, 0.87,
                   0.55, 8, 450e9, 50e9, f"H100 defaults: MAMF 792.1 TFLOP/s bf16 (Bekman), FlashAttention-3/cuDNN "
                   f"~0.55, FlashAttention-2 ~0.33; fp8 best rate 1,507 TFLOP/s (AIConfigurator, TensorRT-LLM); {_NV}",
                   (("bf16", 792.1e12, 989.4e12, 6144, 17920, 2816), ("fp8", 1507e12, 1978.9e12, 1025, 65536, 12288)),
                   0.33, scaleup_fraction=0.75, nvls_fraction=0.565),
    "B200": Family("B200", 148, ((256, 256, 1.0), (128, 256, 0.93), (128, 128, 0.85), (64, 128, 0.6)), 0.85, 0.85,
                   0.55, 8, 900e9, 50e9, "B200 defaults: best rates 1,716 / 3,151 / 4,547 TFLOP/s bf16 / fp8 / nvfp4 "
                   f"(AIConfigurator, TensorRT-LLM, B200); {_NV}",
                   (("bf16", 1716e12, 2250e12, 3072, 51200, 3584), ("fp8", 3151e12, 4500e12, 4096, 65536, 6144),
                    ("fp4", 4547e12, 9000e12, 4352, 51200, 16384)), scaleup_fraction=0.68),
    "MI300": Family("MI300", 304, ((256, 256, 1.0), (256, 128, 0.9), (128, 128, 0.8), (64, 64, 0.55)), 0.65, 0.80,
                    0.40, 8, 64e9, 50e9, "MI300X defaults: MAMF 781.9 TFLOP/s bf16 (Bekman, ROCm 6.2); "
                    "Infinity Fabric 64 GB/s per peer link", (("bf16", 781.9e12, 1307.4e12, 4096, 10240, 4864),)),
    "generic": Family("generic", 80, ((128, 128, 1.0), (64, 64, 0.6)), 0.75, 0.80, 0.45, 1, 32e9, 12.5e9,
                      "generic defaults (device not in a known family): 0.7 of peak, PCIe Gen4 x16 between GPUs"),
}
_FAMILY_OF = (("GH200", "H100"), ("H100", "H100"), ("H200", "H100"), ("H800", "H100"), ("H20", "H100"),
              ("B200", "B200"), ("B300", "B200"), ("GB200", "B200"), ("GB300", "B200"), ("A100", "A100"),
              ("A800", "A100"), ("MI300", "MI300"), ("MI325", "MI300"), ("MI355", "MI300"))

K_PIPELINE = 64          # K-loop fill/drain and epilogue cost about 64 K-steps of one tile (CUTLASS multistage)
# Stream-K (Osama et al. 2023, PPoPP; in cuBLAS/CUTLASS since Ampere) splits the K loop of the last partial wave over
# idle SMs, trading wave quantization for one extra fill and a partial-tile fix-up (counted as 2 x K_PIPELINE).
OPERAND_BYTES = {**DTYPE_BYTES, "fp4": 0.5 + 1.0 / 16}  # NVFP4 operands: 4-bit values + one 8-bit scale per 16
OUT_BYTES = 2.0          # GEMM outputs are written in 16 bits (fp8/fp4 GEMMs too: bf16 output, fp32 accumulate)
QUANT_PASSES = {"fp8": (2, 1.0), "fp4": (1, 0.5 + 1.0 / 16)}  # activation cast: (reads of the 16-bit input, bytes
# written per value); see Efficiency.quantize_seconds
LAUNCH_SECONDS = 4e-6    # one kernel launch on the stream, CUDA ~3-5 us (NVIDIA CUDA C++ Best Practices Guide)
ATTENTION_HALF_SEQ = 256  # flash attention reaches half its long-sequence rate near 256 keys per query block row
# (FlashAttention-2 Fig. 4: 512 -> 2k -> 16k tokens rise ~30% then flatten; s / (s + 256) gives 0.67/0.89/0.98)
NETWORK_FRACTION = {"scaleup": 0.80, "scaleout": 0.90}  # nccl-tests busbw / link where a family has no measured
# figure: NVLink ~0.8, InfiniBand ~0.9 (Calculon a100_80g.json uses 0.65 / 0.9). Measured (Family.scaleup_fraction):
# AIConfigurator's nccl-tests tables, all-gather and reduce-scatter of 512 MB on 8 GPUs of one node: A100 205-213 of
# 300 GB/s (0.70; NCCL 2.27.3), H100 335-336 of 450 (0.75; 2.29.2), B200 613-617 of 900 (0.68; 2.29.2). NVLS
# all-reduce (Family.nvls_fraction): the same tables' 512 MB all-reduce on 8 GPUs, bus bandwidth / 2(n-1)/n: H100
# 445 / 1.75 = 254 GB/s (0.565 of 450), above what a ring at its all-gather rate reaches (337). B200's all-reduce
# (704) is within 14% of its all-gather (617): no sign of NVLS in that table, none modelled; A100 has no SHARP
NETWORK_LATENCY = {"scaleup": 10e-6, "scaleout": 20e-6}  # per collective (Calculon system files: 10 / 20 us)


def family_of(gpu) -> Family:
    name = (getattr(gpu, "name", "") or "").upper().replace(" ", "")
    for key, fam in _FAMILY_OF:
        if key in name:
            return FAMILIES[fam]
    return FAMILIES["generic"]


def _interp_log(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear interpolation in log(x) over sorted (x, y) points, held flat beyond the ends."""
    if x <= points[0][0]:
        return points[0][1]
    if x >= points[-1][0]:
        return points[-1][1]
    lx = math.log(x)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            t = (lx - math.log(x0)) / (math.log(x1) - math.log(x0)) if x1 > x0 else 0.0
            return y0 + t * (y1 - y0)
    return points[-1][1]


@dataclass(frozen=True)
class Efficiency:
    """What fraction of its peaks a device reaches, by operation and size. All rates in base units per second."""

    gpu_name: str
    family: Family
    peak_flops: dict = field(hash=False)        # dtype -> dense peak FLOP/s
    hbm_peak_bytes_per_s: float
    hbm_bytes_per_s: float                      # achievable streaming bandwidth
    nvlink_domain_gpus: int
    link_bytes_per_s: dict = field(hash=False)  # tier -> per-GPU link bandwidth (one direction)
    source: str                                 # "default: ..." or "measured: <profile path>" (+ what was measured)
    gemm_ratio: dict = field(hash=False, default_factory=dict)  # dtype -> [(flops, measured/model)] from a profile
    attention_measured: dict = field(hash=False, default_factory=dict)  # dtype -> [(seq, fraction of peak)]
    collectives_measured: dict = field(hash=False, default_factory=dict)  # tier -> [(bytes, busbw)]
    pipe_scale: dict = field(hash=False, default_factory=dict)  # format -> factor, from pipe_scales()

    def peak(self, dtype: str) -> float:
        p = self.peak_flops.get(dtype)
        if p is None and dtype in ("bf16", "fp16"):
            p = self.peak_flops.get("fp16" if dtype == "bf16" else "bf16")
        if p is None and dtype == "fp8":  # no fp8 tensor cores: fp8 runs at the 16-bit rate
            p = self.peak_flops.get("bf16") or self.peak_flops.get("fp16")
        return float(p or self.peak_flops.get("fp32") or 1e12)

    def _gemm_model(self, m: float, n: float, k: float, dtype: str) -> float:
        """Seconds of one GEMM by the tile/wave/roofline model (no measured correction)."""
        if m <= 0 or n <= 0 or k <= 0:
            return 0.0
        flops = 2.0 * m * n * k
        best = self._tiles_seconds(m, n, k, dtype)
        width = OPERAND_BYTES.get(dtype, 2)
        memory = ((m * k + k * n) * width + m * n * OUT_BYTES) / self.hbm_bytes_per_s
        # roofline: operand traffic overlaps the tensor pipe (multistage loads), so the slower of the two sets the
        # time; the pipe's rate is set so that the published best shape of the format reproduces its best rate
        scale = self.pipe_scale.get(_format(dtype)) or self.pipe_scale.get("bf16", 1.0)
        return max(best * scale, flops / self.peak(dtype), memory) + LAUNCH_SECONDS

    def _tiles_seconds(self, m: float, n: float, k: float, dtype: str) -> float:
        fam = self.family
        best = math.inf
        # the fill/drain and epilogue take the time of K_PIPELINE 16-bit K-steps whatever the format (loads and the
        # 16-bit output tile do not speed up with fp8/fp4 math): more K-steps of a faster format
        fill = K_PIPELINE * max(self.peak(dtype) / self.peak("bf16"), 1.0)
        for tm, tn, frac in fam.tiles:
            tiles = math.ceil(m / tm) * math.ceil(n / tn)  # padded output tiles (tile quantization)
            step = 2.0 * tm * tn * fam.sms / (self.peak(dtype) * fam.gemm_fraction * frac)  # one K-step of a tile
            waves = math.ceil(tiles / fam.sms) * (k + fill) * step  # data-parallel tiles: whole waves
            stream_k = (tiles * k / fam.sms + 2 * fill) * step  # Stream-K: K split over idle SMs + fix-up
            best = min(best, waves, stream_k)
        return best

    def pipe_scales(self) -> dict:
        """Format -> the factor on the tensor-pipe time that makes the model reproduce the family's published best
        rate of that format (bf16: Bekman's MAMF; fp8, fp4: AIConfigurator's measured tables) at its best shape,
        taken as a fraction of the peak of the GPU it was measured on. fp16 uses bf16's; a format without a
        published rate uses bf16's."""
        out = {}
        for fmt, rate, src_peak, m, n, k in self.family.mamf:
            target = 2.0 * m * n * k / (rate / src_peak * self.peak(fmt))
            compute = self._tiles_seconds(m, n, k, fmt)
            out[fmt] = max((target - LAUNCH_SECONDS) / compute, 0.5) if compute > 0 else 1.0
        return out

    def quantize_seconds(self, m: float, k: float, dtype: str) -> float:
        """The activation cast a quantized GEMM pays per call. fp8 with a dynamic (current) per-tensor scale, as
        TensorRT-LLM's fp8 linear in AIConfigurator's measured tables and Transformer Engine's current-scaling
        recipe: an amax reduction reading the m x k 16-bit input, then the cast reading it again and writing
        fp8 (two kernels). NVFP4: one kernel, its per-16-value block scales found inside the cast (the global
        scale is the checkpoint's), writing 4-bit values and one 8-bit scale per block."""
        passes = QUANT_PASSES.get(dtype)
        if passes is None or m <= 0 or k <= 0:
            return 0.0
        reads, out = passes
        return m * k * (2.0 * reads + out) / self.hbm_bytes_per_s + reads * LAUNCH_SECONDS

    def gemm_seconds(self, m: float, n: float, k: float, dtype: str = "bf16", quantize: bool = True) -> float:
        """Seconds of an M x N x K GEMM (2MNK FLOPs): the model, scaled by the profile's measured ratio, plus the
        activation cast of a quantized format (quantize=False: the caller casts once for several GEMMs, as a
        grouped expert GEMM does)."""
        t = self._gemm_model(m, n, k, dtype)
        pts = self.gemm_ratio.get(dtype) or self.gemm_ratio.get({"bf16": "fp16", "fp16": "bf16"}.get(dtype, ""))
        if pts and t > 0:
            t /= _interp_log(pts, 2.0 * m * n * k)
        return t + self.quantize_seconds(m, k, dtype) if t > 0 and quantize else t

    def gemm(self, m: float, n: float, k: float, dtype: str = "bf16") -> float:
        """Achieved FLOP/s of an M x N x K GEMM."""
        t = self.gemm_seconds(m, n, k, dtype)
        return 2.0 * m * n * k / t if t > 0 else self.peak(dtype)

    def memory_seconds(self, nbytes: float) -> float:
        """Seconds to stream `nbytes` through HBM (element-wise ops, norms, the optimizer step)."""
        return nbytes / self.hbm_bytes_per_s if nbytes > 0 else 0.0

    def attention_flops_per_s(self, dtype: str = "bf16", seq: float = 4096, head_dim: float = 128,
                              kernel: str = "flash") -> float:
        """Achieved FLOP/s of the flash-attention core (training forward+backward, prefill) at `seq` keys.

        kernel "flash": the best kernel of the family (FlashAttention-3 / cuDNN on Hopper, FlashAttention-2 on
        Ampere); "flash2": FlashAttention-2. Head dims below 128 reuse each K/V tile over fewer FLOPs:
        d / (d + 32), normalised at 128 (FlashAttention-2 Fig. 4: head dim 64 reaches ~0.8 of head dim 128)."""
        pts = self.attention_measured.get(dtype) or self.attention_measured.get(
            {"bf16": "fp16", "fp16": "bf16"}.get(dtype, ""))
        if pts:
            return self.peak(dtype) * _interp_log(pts, seq)
        # fp8 attention: the core stays 16-bit in Transformer Engine's default recipe and torchao float8 linears
        core_dtype = "bf16" if dtype == "fp8" else dtype
        frac = self.family.attention_fraction
        if kernel == "flash2" and self.family.flash2_fraction:
            frac = self.family.flash2_fraction
        width = (head_dim / (head_dim + 32.0)) / (128.0 / 160.0)
        return self.peak(core_dtype) * frac * min(width, 1.1) * seq / (seq + ATTENTION_HALF_SEQ)

    def collective_bus_bytes_per_s(self, tier: str, nbytes: float | None = None) -> float:
        """Achievable nccl-tests bus bandwidth on `tier` ("scaleup" NVLink, "scaleout" NIC) per GPU."""
        pts = self.collectives_measured.get(tier)
        if pts:
            return _interp_log(pts, nbytes or pts[-1][0])
        fraction = self.family.scaleup_fraction if tier == "scaleup" and self.family.scaleup_fraction else \
            NETWORK_FRACTION[tier]
        return self.link_bytes_per_s[tier] * fraction

    def collective_latency_seconds(self, tier: str) -> float:
        return NETWORK_LATENCY[tier]


def _format(dtype: str) -> str:
    return "bf16" if dtype in ("bf16", "fp16") else dtype


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def efficiency_for(gpu, profile: dict | None = None) -> Efficiency:
    """Efficiencies of `gpu` (a catalog GPU or any object with name, peak_flops, bandwidth_bytes_per_s): documented
    family defaults, with the measured values of a `llmplan bench` profile (its JSON object, or a Profile with
    .data and .path) in their place where it has them."""
    fam = family_of(gpu)
    peaks = dict(getattr(gpu, "peak_flops", {}) or {})
    hbm_peak = float(getattr(gpu, "bandwidth_bytes_per_s", 0.0) or 1e12)
    domain = getattr(gpu, "nvlink_domain_gpus", None) or fam.nvlink_domain_gpus
    pcie = getattr(gpu, "pcie_bandwidth_bytes_per_s", None)  # no NVLink / no NIC figure: traffic takes PCIe
    links = {"scaleup": getattr(gpu, "scaleup_bandwidth_bytes_per_s", None) or pcie or fam.scaleup_bytes_per_s,
             "scaleout": getattr(gpu, "scaleout_bandwidth_bytes_per_s", None) or pcie or fam.scaleout_bytes_per_s}
    base = Efficiency(gpu_name=getattr(gpu, "name", "device"), family=fam, peak_flops=peaks,
                      hbm_peak_bytes_per_s=hbm_peak, hbm_bytes_per_s=hbm_peak * fam.hbm_fraction,
                      nvlink_domain_gpus=int(domain), link_bytes_per_s=links, source=f"default: {fam.source}")
    base = Efficiency(**{**base.__dict__, "pipe_scale": base.pipe_scales()})
    if profile is None:
        return base
    path = getattr(profile, "path", None)
    data = getattr(profile, "data", profile)
    if not isinstance(data, dict):
        return base
    measured: list[str] = []
    hbm = data.get("hbm_bytes_per_s")
    hbm_bytes = float(hbm) if _positive(hbm) else base.hbm_bytes_per_s
    if _positive(hbm):
        measured.append("HBM")
    model = Efficiency(**{**base.__dict__, "hbm_bytes_per_s": hbm_bytes})
    model = Efficiency(**{**model.__dict__, "pipe_scale": model.pipe_scales()})
    ratios: dict[str, list] = {}
    for p in data.get("gemm_curve") or []:
        if not isinstance(p, dict) or not all(_positive(p.get(key)) for key in ("m", "n", "k", "flops_per_s")):
            continue
        dtype = str(p.get("dtype", "bf16"))
        m, n, k = float(p["m"]), float(p["n"]), float(p["k"])
        t_model = model._gemm_model(m, n, k, dtype)
        t_meas = 2.0 * m * n * k / float(p["flops_per_s"])
        ratios.setdefault(dtype, []).append((2.0 * m * n * k, t_model / t_meas))
    if ratios:
        measured.append("GEMM curve")
    attention: dict[str, list] = {}
    for a in data.get("attention") or []:
        if isinstance(a, dict) and a.get("kind", "prefill") == "prefill" and _positive(a.get("seq")) \
                and _positive(a.get("flops_per_s")):
            dtype = str(a.get("dtype", "bf16"))
            attention.setdefault(dtype, []).append((float(a["seq"]), float(a["flops_per_s"]) / model.peak(dtype)))
    if attention:
        measured.append("attention")
    coll: dict[str, list] = {}
    for c in data.get("collectives") or []:
        if isinstance(c, dict) and _positive(c.get("bytes")) and _positive(c.get("bus_bytes_per_s")):
            ranks = c.get("ranks") or 1
            tier = "scaleup" if ranks <= domain else "scaleout"
            coll.setdefault(tier, []).append((float(c["bytes"]), float(c["bus_bytes_per_s"])))
    if coll:
        measured.append("collectives")
    if not measured:
        return base
    src = f"measured: {path or 'profile'} ({', '.join(measured)}); the rest {base.source}"
    return Efficiency(**{**model.__dict__, "source": src,
                         "gemm_ratio": {d: sorted(v) for d, v in ratios.items()},
                         "attention_measured": {d: sorted(v) for d, v in attention.items()},
                         "collectives_measured": {t: sorted(v) for t, v in coll.items()}})
