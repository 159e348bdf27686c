"""One regression test per class of failure the CLI fuzzer found (issue 15): special files, nesting, long names,
extreme numbers, large fits, the fit on a sweep's own runs, interruption, outputs checked before the work."""

import json
import os
import signal
import stat
import time

import pytest

from llmplan.errors import LlmplanError
from llmplan.files import check_writable_target, read_json, write_json

LAW = {"schema_version": 1, "kind": "llmplan.law", "form": "E + A/N^alpha + B/D^beta", "name": "t",
       "E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
# 11 runs as `llmplan bench --scaling --quick --budget-seconds 20` wrote them: the unbounded fit's log A passed 709
SWEEP = """params,tokens,flops,loss
7088,79872,3.396796e+09,2.848474
13128,43008,3.387654e+09,3.083308
20832,26624,3.327787e+09,3.378164
7088,239616,1.019039e+10,2.524541
13128,129024,1.016296e+10,2.652960
20832,80896,1.011135e+10,2.784848
33440,50176,1.006731e+10,2.892910
7088,717824,3.052762e+10,2.187638
13128,387072,3.048889e+10,2.255954
20832,243712,3.046205e+10,2.403725
33440,151552,3.040739e+10,2.570608
"""


def one_line_error(run, *needles):
    assert run.code == 2, (run.code, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmplan: error:"), run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def test_the_writer_never_replaces_a_device_node_or_fifo(tmp_path, fifo, cli):
    with pytest.raises(LlmplanError, match="not a regular file"):
        write_json(fifo, {"x": 1})
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(LlmplanError, match="not a regular file"):
        check_writable_target("/dev/null")  # checked without writing anything
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    runs = tmp_path / "runs.csv"
    runs.write_text(SWEEP)
    one_line_error(cli("fit", runs, "--bootstrap", "0", "--save", fifo), "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    # a link to a file is written through, and stays a link
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("{}")
    link.symlink_to(real)
    write_json(link, {"x": 2})
    assert link.is_symlink() and json.loads(real.read_text()) == {"x": 2}


def test_inputs_are_regular_files_of_bounded_size(tmp_path, fifo, cli):
    for special in ("/dev/zero", fifo):  # /dev/zero never ends; opening a FIFO blocks until a writer comes
        with pytest.raises(LlmplanError, match="not a regular file"):
            read_json(special)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"padding": "x" * 2000}))
    with pytest.raises(LlmplanError, match="at most 1,000"):
        read_json(big, limit=1000)
    one_line_error(cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--profile", fifo), "regular file")
    one_line_error(cli("chinchilla", "--law", "/dev/zero", "--flops", "1e23"), "regular file")
    one_line_error(cli("fit", fifo), "regular file")
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink("/dev/zero", folder / "config.json")
    one_line_error(cli("models", folder), "regular file")


def test_json_nesting_is_bounded(tmp_path, cli):
    deep = "[" * 100_000 + "]" * 100_000
    law = tmp_path / "law.json"
    law.write_text(json.dumps(LAW)[:-1] + ', "x": ' + deep + "}")
    one_line_error(cli("chinchilla", "--law", law, "--flops", "1e23"), "nests too deeply")
    profile = tmp_path / "profile.json"
    profile.write_text('{"a":' * 5000 + "1" + "}" * 5000)
    one_line_error(cli("memory", "--model", "llama-2-7b", "--profile", profile), "nests too deeply")
    config = tmp_path / "config.json"
    config.write_text(deep)
    one_line_error(cli("models", config), "nests too deeply")
    moderately = tmp_path / "ok.json"
    moderately.write_text(json.dumps({"a": [[[[1]]]]}))
    assert read_json(moderately) == {"a": [[[[1]]]]}


def test_integers_beyond_any_quantity_in_files_are_refused(tmp_path, cli):
    law = tmp_path / "law.json"
    law.write_text(json.dumps({**LAW, "A": 10**400}))
    one_line_error(cli("chinchilla", "--law", law, "--flops", "1e23"), "401 digits")
    profile = tmp_path / "profile.json"
    profile.write_text('{"kind": "llmplan.profile", "runs": [{"params": ' + "9" * 400 + "}]}")
    one_line_error(cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--profile", profile), "400 digits")


@pytest.mark.parametrize("args", [
    ("models", "x" * 300),
    ("memory", "--model", "y" * 300),
    ("compute", "--model", "llama-2-7b", "--tokens", "1T", "--profile", "p" * 300 + ".json"),
    ("chinchilla", "--law", "l" * 300 + ".json", "--flops", "1e23"),
    ("chinchilla", "--flops", "1e19..1e26", "--plot", "q" * 300 + ".png"),
    ("fit", "r" * 300 + ".csv"),
    ("bench", "--quick", "--out", "o" * 300 + ".json"),
    ("bench", "--scaling", "--quick", "--data", "d" * 300),
])
def test_names_longer_than_the_file_system_allows_are_clear_errors(cli, args):
    one_line_error(cli(*args), "too long")


def test_a_long_data_folder_is_a_clear_error(cli, monkeypatch):
    monkeypatch.setenv("LLMPLAN_DATA_DIR", "d" * 100_000)
    one_line_error(cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--profile", "auto"), "too long")


@pytest.mark.parametrize("args, needle", [
    (("memory", "--model", "llama-2-7b", "--batch", "1e300"), "--batch"),
    (("memory", "--model", "llama-2-7b", "--batch", "9" * 400), "--batch"),
    (("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "1e308"), "--gpus"),
    (("compute", "--model", "llama-2-7b", "--tokens", "1e308"), "--tokens"),
    (("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--price", "1e308"), "--price"),
    (("compute", "--gpu", "h100", "--gpus", "8", "--days", "1e300"), "--days"),
    (("chinchilla", "--flops", "1.7e308"), "--flops"),
    (("chinchilla", "--flops", "1e19..1.7e308"), "--flops"),
    (("memory", "--model", "llama-2-7b", "--seq", "1e300"), "--seq"),
])
def test_extreme_numbers_are_bounded_with_the_bound_named(cli, args, needle):
    one_line_error(cli(*args), needle, "at most")


@pytest.mark.parametrize("constants", [{"A": 1e308}, {"alpha": 1e-300}, {"alpha": 1000.0, "beta": 1000.0},
                                       {"A": 5e-324}, {"B": 1e308, "beta": 1e-300}])
def test_law_constants_outside_any_real_law_are_refused(tmp_path, cli, constants):
    law = tmp_path / "law.json"
    law.write_text(json.dumps({**LAW, **constants}))
    for args in (("--flops", "1e23"), ("--params", "7B", "--inference-tokens", "2T")):
        one_line_error(cli("chinchilla", "--law", law, *args), "outside")


def test_the_law_arithmetic_stays_in_floating_point_at_its_bounds():
    from llmplan.estimate.laws import LAW_BOUNDS, ParametricLaw

    extreme = ParametricLaw("x", "test", E=0.0, A=LAW_BOUNDS["A"][0], B=LAW_BOUNDS["B"][1],
                            alpha=LAW_BOUNDS["alpha"][0], beta=LAW_BOUNDS["beta"][0])
    with pytest.raises(LlmplanError, match="beyond any model"):
        extreme.optimal(1e23)
    assert extreme.loss(1e9, 1e12) > 0  # each term in logs: no OverflowError


def test_no_infinity_or_nan_is_printed(cli):
    for args in (("compute", "--model", "llama-2-7b", "--tokens", "1e18", "--gpu", "h100", "--mfu", "0.0001"),
                 ("chinchilla", "--flops", "1e40")):
        r = cli(*args)
        assert r.code == 0, r.stderr
        assert " inf" not in r.stdout and "nan" not in r.stdout.lower()


def test_fit_bounds_its_input_and_its_bootstrap(tmp_path, cli, monkeypatch):
    from llmplan.fit import runs as runs_mod

    path = tmp_path / "runs.csv"
    path.write_text(SWEEP)
    monkeypatch.setattr(runs_mod, "MAX_RUNS", 8)
    one_line_error(cli("fit", path, "--bootstrap", "0"), "fit reads at most 8")
    monkeypatch.undo()
    one_line_error(cli("fit", path, "--bootstrap", "1000000000"), "--bootstrap")
    one_line_error(cli("fit", path, "--bootstrap", "9" * 400), "--bootstrap", "400 digits")
    one_line_error(cli("fit", path, "--seed", "-1"), "--seed")


def test_the_fit_survives_a_sweep_whose_law_runs_off_to_infinity(tmp_path, cli):
    path = tmp_path / "runs.csv"
    path.write_text(SWEEP)
    r = cli("fit", path, "--bootstrap", "0", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["undetermined"] and "do not determine" in " ".join(r.stderr.split())
    assert all(isinstance(data[k], float) for k in ("E", "A", "B", "alpha", "beta"))


def test_sigterm_is_handled_as_ctrl_c():
    from llmplan.cli.app import _sigterm_interrupts

    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _sigterm_interrupts()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler's KeyboardInterrupt ends the sleep
    finally:
        signal.signal(signal.SIGTERM, before)


def _session_members(sid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(d))
    return out


def test_stopping_a_launch_ends_every_process_of_its_session_even_one_that_ignores_sigterm():
    import subprocess

    from llmplan.bench.launch import STOP_SECONDS, stop

    assert STOP_SECONDS + 2.0 <= 10  # SIGTERM's grace and SIGKILL's wait: every rank gone within 10 s

    # a launcher-like parent with a child that ignores SIGTERM, as a hung rank would
    proc = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 60 & trap '' TERM; wait"], start_new_session=True)
    time.sleep(0.5)
    assert len(_session_members(proc.pid)) >= 2
    stop(proc, grace=1.0)
    time.sleep(0.2)
    assert _session_members(proc.pid) == []


def test_an_interrupt_is_said_once_with_exit_130(cli, monkeypatch):
    from llmplan.cli import fit_cmd

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("llmplan.fit.fit_chinchilla", interrupted)
    path = fit_cmd.Path(os.environ["LLMPLAN_DATA_DIR"]).parent / "runs.csv"
    path.write_text(SWEEP)
    r = cli("fit", path, "--bootstrap", "0")
    assert r.code == 130 and r.stderr.strip().splitlines() == ["llmplan: error: interrupted"]


@pytest.mark.parametrize("option", ["--batch", "--steps", "--warmup", "--seq"])
def test_bench_counts_of_400_digits_are_refused_before_anything_runs(cli, option):
    pytest.importorskip("torch")
    one_line_error(cli("bench", "--quick", option, "9" * 400), option, "400 digits")
