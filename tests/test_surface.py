"""One surface: each option spelling means one thing across the commands, and the old
spellings still work for a release, with a note."""

from __future__ import annotations

import collections

import pytest
import typer

from xnorfault.cli import app
from xnorfault.cli._deprecated import DEPRECATED_SPELLINGS, rewrite_deprecated


def _commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


def _options(command) -> dict[str, str]:
    """Each spelling of the command's options → the parameter it fills."""
    return {
        spelling: parameter.name
        for parameter in command.params
        if getattr(parameter, "param_type_name", "") == "option"
        for spelling in (*parameter.opts, *parameter.secondary_opts)
    }


def test_no_option_spelling_fills_two_different_parameters_across_the_commands():
    filled = collections.defaultdict(set)
    for _path, command in _commands():
        for spelling, parameter in _options(command).items():
            filled[spelling].add(parameter)
    # -o is what the command writes: a file, or train's run folder (-o/--out)
    clashes = {
        spelling: names
        for spelling, names in filled.items()
        if len(names) > 1 and not (spelling == "-o" and names == {"output", "out"})
    }
    assert clashes == {}
    # the spellings that had two meanings now have one
    assert filled["--mram-device"] == {"mram_device"} and "--device" not in filled
    assert filled["--output-name"] == {"output_name"} and filled["--output"] == {"output"}
    assert "--limit" not in filled and "--batch" not in filled and "--time" not in filled


def test_every_old_spelling_names_a_new_one_of_its_own_command_and_no_current_option():
    commands = dict(_commands())
    for path, spellings in DEPRECATED_SPELLINGS.items():
        current = _options(commands[path])
        for old, new in spellings.items():
            assert new in current, (path, old, new)
            assert old not in current, (path, old)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", "m.onnx", "--limit", "5"], ["evaluate", "m.onnx", "--limit-test", "5"]),
        (["evaluate", "m.onnx", "--limit=5"], ["evaluate", "m.onnx", "--limit-test=5"]),
        (["evaluate", "m.onnx", "-dpaper"], ["evaluate", "m.onnx", "--mram-device=paper"]),
        (["evaluate", "m.onnx", "-d", "x.toml"], ["evaluate", "m.onnx", "--mram-device", "x.toml"]),
        (["train", "--device", "cpu"], ["train", "--torch-device", "cpu"]),
        (["mram", "retention", "--time", "1y"], ["mram", "retention", "--age", "1y"]),
        (["mram", "wer", "-d", "paper"], ["mram", "wer", "--mram-device", "paper"]),
        # not an old spelling of that command, or a value after --: left alone
        (["export", "--device", "x"], ["export", "--device", "x"]),
        (["evaluate", "--", "--limit"], ["evaluate", "--", "--limit"]),
        (["evaluate", "m.onnx", "--limit-test", "5"], ["evaluate", "m.onnx", "--limit-test", "5"]),
    ],
)
def test_old_spellings_are_rewritten_to_the_new_names(argv, expected, capsys):
    assert rewrite_deprecated(argv) == expected
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == (argv != expected)
    if notes:
        assert notes[0].startswith("note: ") and "goes in xnorfault" in notes[0]


def test_an_old_spelling_still_runs_with_one_note(run_cli):
    code, out, err = run_cli("mram", "retention", "--time", "1y", "-d", "paper", "--json")
    assert code == 0
    assert [line.split("'")[1] for line in err.splitlines()] == [
        "mram retention --time",
        "mram retention -d",
    ]
    new_code, new_out, new_err = run_cli(
        "mram", "retention", "--age", "1y", "--mram-device", "paper", "--json"
    )
    assert (new_code, new_out, new_err) == (0, out, "")


def test_the_api_takes_the_old_keyword_of_a_renamed_option_with_a_warning(tmp_path):
    import xnorfault

    with pytest.warns(DeprecationWarning, match="limit_test"):
        with pytest.raises(xnorfault.XnorfaultError):
            xnorfault.evaluate(tmp_path / "missing.onnx", tmp_path / "t.npz", limit=4, ber=0.1)


def test_the_evaluate_table_fits_80_columns_and_wide_shows_every_column(
    run_cli, tiny_model, monkeypatch
):
    from helpers import TINY_LENET4

    from xnorfault.cli._common import console

    folder = tiny_model(*TINY_LENET4)
    monkeypatch.setattr(console, "width", 80)
    arguments = [
        *("evaluate", str(folder / "model.onnx"), "--data", str(folder / "test.npz")),
        *("--voltage", "0.45,0.5", "--pulse", "10ns", "--repeats", "2", "--latency-batches", "1"),
    ]
    code, out, err = run_cli(*arguments)
    assert code == 0, err
    table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 for line in table)
    assert "…" not in "\n".join(table)  # no cell cut
    assert "energy/bit" in out and "p50 b1 (ms)" in out and "p(+1→−1)" not in out
    monkeypatch.setattr(console, "width", 200)
    code, out, err = run_cli(*arguments, "--wide")
    assert code == 0 and "p(+1→−1)" in out and "endurance" in out
