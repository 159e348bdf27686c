"""Scaling laws: compute-optimal sizing C -> (N, D) and, where a law has one, the loss L(N, D).

Every law uses C = 6 N D training FLOPs (Kaplan et al. 2020, section 2.1; Hoffmann et al. 2022, section 3).
`get_law(name_or_path)` returns one of the published laws below or a law fitted by `llmplan fit --save` /
`llmplan bench --scaling` (a law.json file). Plain Python: no numpy or scipy on the planner path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.units import PFLOPS_DAY

FLOPS_PER_PARAM_TOKEN = 6.0  # C = 6 N D: forward 2 N D + backward 4 N D (Kaplan et al. 2020, section 2.1)
LAW_KIND = "llmplan.law"
LAW_FORM = "E + A/N^alpha + B/D^beta"


def _as_float(value) -> float | None:
    # numpy scalars and ints are welcome; strings and bools are not (parse user text with llmplan.units first)
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _check_flops(flops: float) -> float:
    x = _as_float(flops)
    if x is None or x <= 0:
        raise LlmplanError(f"a compute budget must be a finite number of FLOPs greater than zero, got {flops!r}")
    return x


def _check_count(value: float, what: str) -> float:
    x = _as_float(value)
    if x is None or x <= 0:
        raise LlmplanError(f"{what} must be a finite number greater than zero, got {value!r}")
    return x


@dataclass(frozen=True)
class Law:
    """A scaling law. Subclasses give the compute-optimal frontier and, where they can, the loss."""

    name: str
    source: str

    # The frontier: the (params, tokens) that minimise loss for `flops` training FLOPs.
    def optimal(self, flops: float) -> tuple[float, float]:
        raise NotImplementedError

    # The inverse of the frontier: the training FLOPs at which `params` is the compute-optimal size.
    def flops_for_params(self, params: float) -> float:
        raise NotImplementedError

    def optimal_tokens(self, params: float) -> float:
        """Compute-optimal training tokens for a model of `params` parameters."""
        params = _check_count(params, "a parameter count")
        return self.flops_for_params(params) / (FLOPS_PER_PARAM_TOKEN * params)

    def loss(self, params: float, tokens: float) -> float | None:
        """Predicted final loss (nats per token), or None where the law has no loss."""
        return None

    @property
    def has_loss(self) -> bool:
        return False

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class RatioLaw(Law):
    """D = k N with C = 6 N D, so N = sqrt(C / (6 k)) (the "20 tokens per parameter" rule of thumb)."""

    tokens_per_param: float = 20.0

    def optimal(self, flops: float) -> tuple[float, float]:
        flops = _check_flops(flops)
        n = math.sqrt(flops / (FLOPS_PER_PARAM_TOKEN * self.tokens_per_param))
        return n, self.tokens_per_param * n

    def flops_for_params(self, params: float) -> float:
        params = _check_count(params, "a parameter count")
        return FLOPS_PER_PARAM_TOKEN * params * self.tokens_per_param * params

    def describe(self) -> str:
        return f"D = {self.tokens_per_param:g} N, C = 6 N D"


@dataclass(frozen=True)
class ParametricLaw(Law):
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2) with its closed-form frontier."""

    E: float = 0.0
    A: float = 0.0
    B: float = 0.0
    alpha: float = 0.0
    beta: float = 0.0

    @property
    def log_G(self) -> float:
        # G = (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al. 2022, eq. 4), in logs: no overflow
        return (math.log(self.alpha) + math.log(self.A) - math.log(self.beta) - math.log(self.B)) / (
            self.alpha + self.beta)

    @property
    def G(self) -> float:
        return self._exp(self.log_G, "G")

    def _exp(self, log_value: float, what: str, may_vanish: bool = False) -> float:
        """exp of a log-space result; beyond floating point is an error naming the law, not inf or 0."""
        if may_vanish and log_value <= -700:
            return 0.0
        if not -700 < log_value < 700:
            raise LlmplanError(f"the law {self.name} gives {what} = e^{log_value:.4g}, beyond any model or budget: "
                               f"its constants (A {self.A:.3g}, B {self.B:.3g}, alpha {self.alpha:.3g}, beta "
                               f"{self.beta:.3g}) are far from a real law")
        return math.exp(log_value)

    @property
    def a(self) -> float:
        return self.beta / (self.alpha + self.beta)  # N_opt ~ C^a (Hoffmann et al. 2022, eq. 4)

    @property
    def b(self) -> float:
        return self.alpha / (self.alpha + self.beta)  # D_opt ~ C^b (Hoffmann et al. 2022, eq. 4)

    def optimal(self, flops: float) -> tuple[float, float]:
        flops = _check_flops(flops)
        # N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b (Hoffmann et al. 2022, eq. 4); N_opt D_opt = C/6 exactly.
        log_x = math.log(flops / FLOPS_PER_PARAM_TOKEN)
        log_n = self.log_G + self.a * log_x
        return self._exp(log_n, "N_opt"), self._exp(log_x - log_n, "D_opt")

    def flops_for_params(self, params: float) -> float:
        params = _check_count(params, "a parameter count")
        log_x = (math.log(params) - self.log_G) / self.a
        return FLOPS_PER_PARAM_TOKEN * self._exp(log_x, "C/6")

    def optimal_params_for_tokens(self, tokens: float) -> float:
        """The compute-optimal N for D training tokens: N = G (G D)^(beta/alpha) (inverse of eq. 4)."""
        tokens = _check_count(tokens, "a token count")
        return self._exp(self.log_G + (self.log_G + math.log(tokens)) * self.beta / self.alpha, "N_opt")

    def loss(self, params: float, tokens: float) -> float | None:
        params = _check_count(params, "a parameter count")
        tokens = _check_count(tokens, "a token count")
        return self.E + self.params_term(params) + self.tokens_term(tokens)

    def params_term(self, params: float) -> float:
        # A/N^alpha as exp(log A - alpha log N): it underflows to 0 rather than overflowing N^alpha
        return self._exp(math.log(self.A) - self.alpha * math.log(params), "A/N^alpha", True)

    def tokens_term(self, tokens: float) -> float:
        return self._exp(math.log(self.B) - self.beta * math.log(tokens), "B/D^beta", True)  # B/D^beta

    @property
    def has_loss(self) -> bool:
        return True

    def describe(self) -> str:
        return (f"L = {self.E:.4g} + {self.A:.4g}/N^{self.alpha:.4g} + {self.B:.4g}/D^{self.beta:.4g}; "
                f"N_opt ~ C^{self.a:.3f}")

    def constants(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}


@dataclass(frozen=True)
class KaplanLaw(Law):
    """N_opt = n_coef (C / PF-day)^exponent in non-embedding parameters (Kaplan et al. 2020, eq. 6.1, Fig. 14).

    Tokens follow from C = 6 N D. No loss: Kaplan's L(N, D) (eq. 1.5) is in nats on WebText2 with the GPT-2
    tokenizer, not comparable with the Chinchilla-form laws (MassiveText), so it is left out of loss comparisons.
    """

    n_coef: float = 1.3e9
    exponent: float = 0.73

    def optimal(self, flops: float) -> tuple[float, float]:
        flops = _check_flops(flops)
        n = self.n_coef * (flops / PFLOPS_DAY) ** self.exponent
        return n, flops / (FLOPS_PER_PARAM_TOKEN * n)

    def flops_for_params(self, params: float) -> float:
        params = _check_count(params, "a parameter count")
        return PFLOPS_DAY * (params / self.n_coef) ** (1.0 / self.exponent)

    def describe(self) -> str:
        return f"N_opt = {self.n_coef:.2g} (C / PF-day)^{self.exponent} (non-embedding)"


# Published laws. The Hoffmann constants are the unrounded ones of the paper's TeX source, which its own
# projections use; the rounded ones printed in the paper (1.69, 406.4, 410.7, 0.34, 0.28) move N_opt by ~-20%.
RULE20 = RatioLaw("rule20", "Hoffmann et al. 2022 (Chinchilla): ~20 tokens per parameter at the optimum (Table 3)",
                  tokens_per_param=20.0)
HOFFMANN = ParametricLaw(
    "hoffmann", "Hoffmann et al. 2022, Approach 3 (eq. 10), unrounded constants of the TeX source",
    E=1.69337, A=406.401, B=410.723, alpha=0.33917084, beta=0.2849083)
EPOCH = ParametricLaw(
    "epoch", "Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt' (arXiv 2404.10102), Approach 3 refit",
    E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
KAPLAN = KaplanLaw("kaplan", "Kaplan et al. 2020, eq. 6.1 / Fig. 14: N_opt = 1.3e9 (C/PF-day)^0.73, non-embedding")
# Muennighoff et al. 2023 (arXiv 2305.16264), App. A eq. 17: their single-epoch fit on C4 (alpha tied to beta);
# A = e^6.255414, B = e^7.3049974, E = e^0.6254804, alpha = beta = 0.3526596.
MUENNIGHOFF = ParametricLaw(
    "muennighoff", "Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models', App. A fit (C4)",
    E=math.exp(0.6254804), A=math.exp(6.255414), B=math.exp(7.3049974), alpha=0.3526596, beta=0.3526596)

PUBLISHED: dict[str, Law] = {law.name: law for law in (RULE20, HOFFMANN, EPOCH, KAPLAN, MUENNIGHOFF)}
COMPARED = ("rule20", "hoffmann", "epoch", "kaplan")  # shown side by side by default


# What a law file may hold. Loss is in nats per token: E at most 20 (a uniform guess over 10^8 tokens is 18.4);
# A and B from 1e-30 to 1e90 (llmplan fit's search box spans e^-50 to e^200 ~ 7e86); exponents from 0.01 (the loss
# barely moves with scale) to 20 (fit's search bound). Beyond these, losses and frontiers leave floating point.
LAW_BOUNDS = {"E": (0.0, 20.0), "A": (1e-30, 1e90), "B": (1e-30, 1e90), "alpha": (0.01, 20.0), "beta": (0.01, 20.0)}


def law_names() -> tuple[str, ...]:
    return tuple(PUBLISHED)


def get_law(name_or_path: str | os.PathLike) -> Law:
    """A published law by name (rule20, hoffmann, epoch, kaplan, muennighoff) or a law.json file."""
    key = str(name_or_path).strip()
    if key.lower() in PUBLISHED:
        return PUBLISHED[key.lower()]
    from llmplan.files import check_path_text

    check_path_text(key, "--law")
    path = Path(key).expanduser()
    if path.exists():
        return load_law_file(path)
    if key.lower().endswith(".json") or os.sep in key or "/" in key:
        raise LlmplanError(f"no law file at {str(path)!r}; write one with `llmplan fit --save` or `llmplan bench "
                           f"--scaling`, or name a published law: {', '.join(PUBLISHED)}")
    raise LlmplanError(f"unknown law {key!r}: choose one of {', '.join(PUBLISHED)}, or give the path of a law.json "
                       "written by `llmplan fit --save` or `llmplan bench --scaling`")


def load_law_file(path: str | os.PathLike) -> ParametricLaw:
    """Read and validate a law.json: kind llmplan.law, form E + A/N^alpha + B/D^beta, finite constants."""
    from llmplan.files import read_json

    path = Path(path)
    data = read_json(path, "law file")  # a regular file of bounded size and nesting
    if not isinstance(data, dict) or data.get("kind") != LAW_KIND:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise LlmplanError(f"{str(path)!r} is not a law file (kind {kind!r}); expected kind {LAW_KIND!r} as "
                           "written by `llmplan fit --save` or `llmplan bench --scaling`")
    version = data.get("schema_version", 1)
    if version != 1:
        raise LlmplanError(f"law file {str(path)!r} has schema_version {version!r}; this llmplan reads version 1")
    form = data.get("form", LAW_FORM)
    if str(form).replace(" ", "") != LAW_FORM.replace(" ", ""):
        raise LlmplanError(f"law file {str(path)!r} has form {form!r}; only {LAW_FORM!r} is supported")
    values: dict[str, float] = {}
    for key in ("E", "A", "B", "alpha", "beta"):
        raw = data.get(key)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise LlmplanError(f"law file {str(path)!r}: {key} must be a finite number, got {raw!r}")
        lo, hi = LAW_BOUNDS[key]
        if not lo <= raw <= hi:
            raise LlmplanError(f"law file {str(path)!r}: {key} = {raw:.6g} is outside {lo:g} to {hi:g}, the range "
                               "in which a law describes language models (published fits: E 1.7-1.9, A and B "
                               "400-2100, alpha and beta 0.28-0.37)")
        values[key] = float(raw)
    name = str(data.get("name") or path.stem)
    source = str(data.get("source") or f"fitted law from {path}")
    return ParametricLaw(name, source, **values)
