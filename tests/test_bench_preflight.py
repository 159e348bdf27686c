"""`llmplan bench` says what it will run before it starts, refuses what cannot fit, checks its outputs first, and
never passes an interrupted or unsaved run off as a result (issue 15)."""

import pytest

pytest.importorskip("torch")

from llmplan.errors import LlmplanError  # noqa: E402

TINY = ["--quick", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch", "1", "--seq", "32"]
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _never(*args, **kwargs):
    raise AssertionError("the bench ran although it should have been refused first")


def test_what_will_run_is_said_first_and_each_phase_is_a_line_when_piped(cli):
    r = cli("bench", *TINY, "--max-rungs", "2", "--no-save", "--json")
    assert r.code == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "bench: a ladder of up to 2 model sizes" in err and "needs about" in err
    assert err.index("bench: a ladder") < err.index("measuring ladder-h64-l2")  # before, then a line per phase
    assert "measuring ladder-h128-l2" in err


def test_a_run_that_cannot_fit_is_refused_with_the_estimate(cli, monkeypatch):
    from llmplan.bench import ladder

    monkeypatch.setattr(ladder, "_available_bytes", lambda device: 2**20)  # 1 MiB of memory
    monkeypatch.setattr(ladder, "run_config", _never)
    r = cli("bench", *TINY, "--model", "gpt2-124m", "--layers", "2")
    assert r.code == 2 and "would need about" in r.stderr and "1 MiB" in r.stderr


def test_outputs_that_cannot_be_written_are_refused_before_measuring(cli, monkeypatch):
    from llmplan.bench import ladder

    monkeypatch.setattr(ladder, "run_config", _never)
    r = cli("bench", *TINY, "--out", "/proc/llmplan-test-profile.json")
    assert r.code == 2 and "before any work" in r.stderr


def test_interrupted_before_anything_was_measured_says_so_and_prints_no_table(cli, monkeypatch):
    from llmplan.bench import ladder

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ladder, "run_config", interrupt)
    r = cli("bench", *TINY)
    assert r.code == 130 and r.stdout == "" and "nothing to report" in " ".join(r.stderr.split())


def test_a_profile_that_cannot_be_saved_leaves_the_measurements_printed(cli, monkeypatch):
    import llmplan.calibration as calibration

    def fail(*args, **kwargs):
        raise LlmplanError("cannot write the profile: No space left on device")

    monkeypatch.setattr(calibration, "save_profile", fail)
    r = cli("bench", *TINY, "--max-rungs", "1", "--json")
    assert r.code == 2 and "No space left" in r.stderr
    assert r.json()["runs"][0]["status"] == "ok"


def test_a_sweep_says_when_it_was_too_short_for_a_trustworthy_fit():
    from types import SimpleNamespace

    from llmplan.bench.scaling import _too_short

    good = SimpleNamespace(at_bounds=())
    assert _too_short(good, [1] * 12, [1] * 12, "") == ""
    assert "did not fit in the time" in _too_short(good, [1] * 9, [1] * 12, "")
    assert "do not determine alpha" in _too_short(SimpleNamespace(at_bounds=("alpha",)), [1] * 12, [1] * 12, "")
    assert "no law could be fitted (5 runs finished" in _too_short(None, [1] * 5, [1] * 5, "5 runs finished")
    assert "validation run" in _too_short(good, [1] * 12, [1] * 12, "", unvalidated=True)
