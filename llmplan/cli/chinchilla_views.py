"""`llmplan chinchilla` output: the JSON view of each answer and the rich tables that put the laws side by side."""

from __future__ import annotations


from llmplan.estimate.data_constrained import DataConstrainedPoint
from llmplan.estimate.inference_aware import InferenceAwareResult, InferencePlan
from llmplan.estimate.sizing import Diagnosis, Sizing
from llmplan.report.output import table
from llmplan.units import format_count, format_flops


def loss_text(loss: float | None) -> str:
    return "-" if loss is None else f"{loss:.4f}"


def ratio_text(x: float) -> str:
    """Tokens per parameter as a person reads them: 0.196, 20, 59, 1,875 (never 1.88e+03)."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


# ---- JSON views: every answer carries params, tokens, flops, tokens_per_param and loss ----

def sizing_json(s: Sizing) -> dict:
    return {"params": s.params, "tokens": s.tokens, "flops": s.flops, "tokens_per_param": s.tokens_per_param,
            "loss": s.loss}


def diagnosis_json(d: Diagnosis) -> dict:
    return {"params": d.params, "tokens": d.tokens, "flops": d.flops, "tokens_per_param": d.tokens_per_param,
            "loss": d.loss, "optimal_tokens_per_param": d.optimal_tokens_per_param,
            "ratio_to_optimal": d.ratio_to_optimal, "verdict": d.verdict,
            "compute_optimal": sizing_json(d.compute_optimal), "loss_gap": d.loss_gap}


def frontier_json(rows: list[Sizing]) -> dict:
    return {key: [getattr(r, key) for r in rows] for key in ("flops", "params", "tokens", "tokens_per_param", "loss")}


def plan_json(p: InferencePlan) -> dict:
    return {"params": p.params, "tokens": p.tokens, "flops": p.train_flops, "tokens_per_param": p.tokens_per_param,
            "loss": p.loss, "inference_flops": p.inference_flops, "total_flops": p.total_flops}


def inference_json(r: InferenceAwareResult) -> dict:
    return {**plan_json(r.best), "target_loss": r.target_loss, "inference_tokens": r.inference_tokens,
            "saved_flops": r.saved_flops, "saved_fraction": r.saved_fraction,
            "compute_optimal": plan_json(r.compute_optimal)}


def dc_point_json(p: DataConstrainedPoint) -> dict:
    return {"params": p.params, "tokens": p.tokens, "flops": p.flops, "tokens_per_param": p.tokens_per_param,
            "loss": p.loss, "epochs": p.epochs, "unique_tokens": p.unique_tokens,
            "effective_tokens": p.effective_tokens, "effective_params": p.effective_params,
            "loss_fresh_data": p.loss_fresh_data}


# ---- tables ----

LOSS_UNIT = "loss in nats per token"


def sizing_table(title: str, rows: dict[str, Sizing]):
    return table(title, ["law", "params", "tokens", "tokens/param", "training FLOPs", "loss"],
                 [[name, format_count(s.params), format_count(s.tokens), ratio_text(s.tokens_per_param),
                   format_flops(s.flops), loss_text(s.loss)] for name, s in rows.items()], caption=LOSS_UNIT)


def diagnosis_table(title: str, rows: dict[str, Diagnosis]):
    body = []
    for name, d in rows.items():
        best = d.compute_optimal
        body.append([name, ratio_text(d.tokens_per_param), ratio_text(d.optimal_tokens_per_param), d.verdict,
                     loss_text(d.loss), f"{format_count(best.params)} / {format_count(best.tokens)}",
                     loss_text(best.loss)])
    columns = ["law", "D/N", "opt. D/N", "verdict", "loss", "opt. N / D", "opt. loss"]
    return table(title, columns, body, right_align_from=1,
                 caption=f"D/N: tokens per parameter; {LOSS_UNIT}; opt.: the law's compute-optimal model for the "
                         "same FLOPs")


def frontier_table(title: str, series: dict[str, list[Sizing]], chosen: str):
    names = list(series)
    with_loss = any(p.loss is not None for p in series[chosen])  # no empty loss column for rule20 or kaplan
    body = []
    for i, point in enumerate(series[chosen]):
        row = [format_flops(point.flops)]
        row += [f"{format_count(series[n][i].params)} / {format_count(series[n][i].tokens)}" for n in names]
        if with_loss:
            row.append(loss_text(point.loss))
        body.append(row)
    columns = ["FLOPs", *[f"{n} N / D" for n in names]]
    if with_loss:
        columns.append(f"loss ({chosen})")
    return table(title, columns, body, caption=LOSS_UNIT if with_loss else "")


def inference_table(title: str, rows: dict[str, InferenceAwareResult]):
    body = []
    for name, r in rows.items():
        b, c = r.best, r.compute_optimal
        body.append([name, f"{r.target_loss:.4f}", f"{format_count(b.params)} / {format_count(b.tokens)}",
                     format_flops(b.total_flops), f"{format_count(c.params)} / {format_count(c.tokens)}",
                     format_flops(c.total_flops), f"{format_flops(r.saved_flops)} ({r.saved_fraction:.1%})"])
    return table(title, ["law", "target loss", "best N / D", "total FLOPs", "optimal N / D", "its total",
                         "saved"], body, caption=f"{LOSS_UNIT}; total FLOPs: training + inference")


def data_constrained_table(title: str, rows: dict[str, DataConstrainedPoint]):
    return table(title, ["", "N", "D", "epochs", "eff. D", "eff. N", "loss", "fresh loss"],
                 [[name, format_count(p.params), format_count(p.tokens), f"{p.epochs:.3g}",
                   format_count(p.effective_tokens), format_count(p.effective_params), loss_text(p.loss),
                   loss_text(p.loss_fresh_data)] for name, p in rows.items()],
                 caption=f"{LOSS_UNIT}; eff.: the effective tokens and parameters of repeated data (Muennighoff et "
                         "al. 2023, eq. 5-6); fresh loss: the same N and D of unique data")
