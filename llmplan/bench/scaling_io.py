"""Writing a scaling sweep: the runs as the CSV `llmplan fit` reads, the law as law.json, and the JSON summary."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.report.files import write_text

# params, tokens, flops, loss are what `llmplan fit` reads; the rest documents each run.
CSV_COLUMNS = ("params", "tokens", "flops", "loss", "name", "hidden", "layers", "budget_flops", "steps", "peak_lr",
               "train_loss", "epochs", "seconds")


def default_output_dir() -> Path:
    """<llmplan data dir>/scaling/<UTC timestamp>."""
    from llmplan.calibration import data_dir

    return data_dir() / "scaling" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def check_output_paths(out: Path | None, save_law: Path | None) -> None:
    """Fail before any training when an output could not be written."""
    from llmplan.files import check_path_text, probe_writable

    if out is not None:
        check_path_text(out, "--out")
        if not (out.exists() and not out.is_dir()):
            probe_writable(out / "runs.csv", "--out")  # the folder (or where it will be made) takes files
    if save_law is not None:
        probe_writable(save_law, "--save-law")  # a regular file or a new path, never a device node
    if out is not None and out.exists() and not out.is_dir():
        raise LlmplanError(f"--out {out} is a file; give a folder (it is created if missing)")
    if save_law is not None:
        if save_law.is_dir():
            raise LlmplanError(f"--save-law {save_law} is a folder; give a file name such as law.json")
        if not save_law.parent.expanduser().resolve().is_dir():
            raise LlmplanError(f"--save-law {save_law}: folder {save_law.parent} does not exist")


def runs_csv_text(runs) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in runs:
        writer.writerow([r.params, r.tokens, f"{r.flops:.6e}", f"{r.loss:.6f}", r.name, r.hidden, r.layers,
                         f"{r.budget_flops:.6e}", r.steps, f"{r.peak_lr:.6g}", f"{r.train_loss:.6f}",
                         f"{r.epochs:.4f}", f"{r.seconds:.3f}"])
    return buf.getvalue()


def write_runs_csv(path: Path, runs) -> Path:
    write_text(path, runs_csv_text(runs))
    return path


def fit_json(fit) -> dict | None:
    if fit is None:
        return None
    return {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b,
            "intervals": {k: list(v) for k, v in (fit.intervals or {}).items()} or None,
            "interval_level": fit.interval_level, "n_runs": fit.n_runs, "residual_rms": fit.residual_rms,
            "max_abs_residual": fit.max_abs_residual, "converged": fit.converged}


def sweep_json(result, optimal: list[dict], files: dict[str, str], isoflop: list[dict] | None = None) -> dict:
    """The `llmplan bench --scaling --json` object."""
    from dataclasses import asdict

    return {"kind": "llmplan.bench.scaling", "device": result.device, "corpus": result.corpus,
            "recipe": result.recipe, "runs": [asdict(r) for r in result.runs], "fit": fit_json(result.fit),
            "optimal": optimal, "isoflop_minima": isoflop or [], "prediction": result.prediction,
            "seconds": result.seconds, "interrupted": result.interrupted, "files": files,
            "assumptions": list(result.assumptions)}


def write_outputs(result, out: Path, save_law: Path | None) -> dict[str, str]:
    """runs.csv (always, even for an interrupted sweep) and law.json (when there is a fit) into `out`; the law also
    to `save_law` when given. Returns {what: path}."""
    from llmplan.fit.chinchilla import write_law

    files = {"runs_csv": str(write_runs_csv(out / "runs.csv", result.runs))}
    if result.fit is not None:
        source = f"llmplan bench --scaling on {result.device}: {len(result.runs)} runs, {result.corpus['description']}"
        name = f"bench-scaling ({result.device})"
        for key, path in (("law_json", out / "law.json"), ("saved_law", save_law)):
            if path is not None:
                write_law(path, result.fit, name, source)
                files[key] = str(path)
    return files
