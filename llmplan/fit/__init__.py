"""Fitting scaling laws to training runs: the Chinchilla form L(N, D), the loss-compute envelope, IsoFLOP profiles.

numpy and scipy are imported inside the fitting functions, so importing this package stays cheap.
"""

from llmplan.fit.chinchilla import ChinchillaFit, bootstrap_chinchilla, fit_chinchilla, law_document, write_law
from llmplan.fit.envelope import EnvelopeFit, fit_envelope
from llmplan.fit.isoflop import Approach2Fit, IsoflopGroup, fit_approach2
from llmplan.fit.runs import Runs, drop_highest_loss, read_runs

__all__ = ["Approach2Fit", "ChinchillaFit", "EnvelopeFit", "IsoflopGroup", "Runs", "bootstrap_chinchilla",
           "drop_highest_loss", "fit_approach2", "fit_chinchilla", "fit_envelope", "law_document", "read_runs",
           "write_law"]
