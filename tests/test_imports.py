"""The planner commands must start as fast as Typer: no heavy library on their import path."""

import json
import subprocess
import sys

HEAVY = ["torch", "scipy", "matplotlib", "pynvml", "numpy", "pandas", "transformers"]


def _loaded_after(code: str) -> set[str]:
    script = f"import sys; {code}; print(__import__('json').dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_cli_import_pulls_no_heavy_library():
    loaded = _loaded_after("import llmplan.cli")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_planner_commands_import_no_heavy_library():
    # Run real planner commands in-process and look at what they imported.
    for argv in (["models", "llama-7b", "--json"], ["hardware", "h100", "--json"],
                 ["chinchilla", "--flops", "1e19..1e26", "--json"],
                 ["chinchilla", "--params", "175B", "--tokens", "300B", "--json"],
                 ["chinchilla", "--gpu", "h100", "--gpus", "8", "--days", "3", "--json"],
                 ["chinchilla", "--params", "7B", "--inference-tokens", "2T", "--json"],
                 ["chinchilla", "--flops", "1e22", "--unique-tokens", "100B", "--json"],
                 ["compute", "--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "8", "--json"],
                 ["serve", "--model", "llama-7b", "--gpu", "h100", "-i", "500", "-o", "100", "--concurrency", "8",
                  "--json"],
                 ["serve", "--model", "mixtral-8x7b", "--gpu", "h100", "--gpus", "8", "-i", "500", "-o", "100",
                  "--max-throughput", "--slo-tpot", "50ms", "--json"],
                 ["compute", "--gpu", "h100", "--gpus", "8", "--days", "3", "--json"],
                 ["memory", "--model", "llama-7b", "--gpu", "h100", "--zero", "3", "--dp", "8", "--json"],
                 ["memory", "--model", "llama-7b", "--mode", "qlora", "--gpu", "h100"]):
        code = (f"from llmplan.cli import app; import sys; sys.argv=['llmplan', *{argv!r}];\n"
                "try:\n    app()\nexcept SystemExit:\n    pass")
        script = f"{code}\nimport sys as _s; print(__import__('json').dumps(sorted(_s.modules)))"
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        loaded = set(json.loads(out.strip().splitlines()[-1]))
        heavy = {m for m in loaded if m.split(".")[0] in HEAVY}
        assert not heavy, f"{argv}: {sorted(heavy)[:5]}"
