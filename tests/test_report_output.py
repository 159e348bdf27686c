"""Renderers show text as written: brackets in names, paths and sources are not rich markup."""

import json

from llmplan.report.output import emit_json, note, table


def test_note_keeps_brackets(capsys):
    note("profile [cpu] at /tmp/[a]/p.json")
    err = capsys.readouterr().err
    assert "[cpu]" in err and "/tmp/[a]/p.json" in err


def test_table_cells_keep_brackets(capsys):
    from rich.console import Console

    console = Console(width=100)
    with console.capture() as cap:
        console.print(table("t", ["name", "value"], [["gpt [small]", "1"]]))
    assert "gpt [small]" in cap.get()


def test_emit_json_has_schema_version_and_no_nan(capsys):
    emit_json({"x": float("nan"), "y": (1, 2)})
    data = json.loads(capsys.readouterr().out)
    assert data == {"schema_version": 1, "x": None, "y": [1, 2]}


def test_commands_print_no_escaped_markup(cli):
    # Text is escaped once, by the table helpers: a second escape would show as a backslash.
    for args in (["compute", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "h100", "--gpus", "64"],
                 ["chinchilla", "--params", "175B", "--tokens", "300B"]):
        r = cli(*args)
        assert r.code == 0 and "\\[" not in r.stdout, args
    assert "[step-time" in cli("compute", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "h100").stdout
    assert "[--mfu" in cli("compute", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "h100", "--mfu",
                           "0.4").stdout
