"""One JSON schema per command: every ``--json`` carries ``schema`` and ``xnorfault_version``,
its fields are always present (null where they do not apply), and the committed JSON Schemas
(xnorfault/schemas) accept the real output of every command (``run_cli`` validates each
``--json`` output of the suite; this module makes sure every schema meets one)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import typer
from helpers import TINY_LENET4

from xnorfault.cli import app
from xnorfault.schemas import SCHEMA_VERSIONS, complete, document, load_schema


def _json_commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _json_commands(sub, (*path, name))
    elif any("--json" in getattr(p, "opts", ()) for p in command.params):
        yield ".".join(path)


def test_every_command_has_json_and_a_schema_of_its_own():
    commands = set(_json_commands())
    assert {"plot", "report", "evaluate", "mram.wer"} <= commands
    assert commands == set(SCHEMA_VERSIONS)


@pytest.mark.parametrize("name", sorted(SCHEMA_VERSIONS))
def test_each_schema_is_valid_names_its_header_and_requires_every_field(name):
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    header = schema["properties"]["schema"]["properties"]
    assert header["name"] == {"const": f"xnorfault.{name}"}
    assert header["version"] == {"const": SCHEMA_VERSIONS[name]}

    def objects(node, where):
        if isinstance(node, dict):
            if "properties" in node:
                yield where, node
            for key, value in node.get("properties", {}).items():
                yield from objects(value, f"{where}.{key}")
            for key in ("items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    yield from objects(node[key], f"{where}.{key}")

    for where, node in objects(schema, name):
        # always present: null where it does not apply, never absent
        assert sorted(node.get("required", [])) == sorted(node["properties"]), where


def test_complete_fills_every_declared_field_with_null_and_keeps_the_rest():
    schema = {
        "properties": {
            "a": {"type": "number"},
            "points": {"items": {"properties": {"x": {}, "y": {}}}},
            "by_site": {"additionalProperties": {"properties": {"p": {}}}},
        }
    }
    filled = complete({"points": [{"x": 1}, {"y": 2, "z": 3}], "by_site": {"s": {}}}, schema)
    assert filled == {
        "a": None,
        "points": [{"x": 1, "y": None}, {"x": None, "y": 2, "z": 3}],
        "by_site": {"s": {"p": None}},
    }
    assert complete(filled, schema) == filled  # once is enough


def test_a_document_that_lacks_a_field_or_has_another_type_is_refused():
    good = document("mram.devices", {"devices": []})
    jsonschema.validate(good, load_schema("mram.devices"))
    for broken in (
        {k: v for k, v in good.items() if k != "devices"},
        {**good, "devices": "paper"},
        {**good, "schema": {"name": "xnorfault.mram.devices", "version": 0}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, load_schema("mram.devices"))


@pytest.fixture(scope="module")
def made(tiny_model, tmp_path_factory):
    folder = tiny_model(*TINY_LENET4)
    return folder, tmp_path_factory.mktemp("json")


def _run(run_cli, *args):
    code, out, err = run_cli(*args, "--json")  # run_cli validates the output
    assert code == 0, err
    return json.loads(out)


def test_the_model_commands_print_documents_their_schemas_accept(run_cli, made):
    folder, out = made
    model, data = str(folder / "model.onnx"), str(folder / "test.npz")
    _run(run_cli, "inspect", model)
    injected = _run(run_cli, "inject", model, "-o", str(out / "f.onnx"), "--ber", "0.02")
    assert injected["schema"] == {"name": "xnorfault.inject", "version": 1}
    swept = _run(run_cli, "evaluate", model, "--data", data, "--ber", "0,0.1", "--repeats", "2")
    # a BER sweep has no MRAM figures, no budget, no chips: present and null
    assert all(p["write_energy"] is None and p["chips"] is None for p in swept["points"])
    assert swept["max_drop"] is None and swept["campaign"] is None
    mram = _run(
        run_cli,
        *("evaluate", model, "--data", data, "--voltage", "0.5", "--pulse", "10ns"),
        *("--repeats", "2", "--max-drop", "2pt", "--chips", "2", "--mram-device", "paper-varied"),
    )
    assert mram["points"][0]["chips"] is not None and mram["points"][0]["ber"] is None
    _run(run_cli, "evaluate", model, "--data", data, "--age", "0", "--chips", "2", "--repeats", "1")
    _run(
        run_cli,
        *("optimize", model, "--data", data, "--max-drop", "2pt", "--pulse", "10ns"),
        *("--repeats", "2", "--verify-repeats", "2"),
    )
    _run(run_cli, "export", str(folder / "run"), "-o", str(out / "again.onnx"))
    _run(run_cli, "plot", str(folder / "run"), "-o", str(out / "curve.png"))
    evaluation = out / "evaluation.json"
    evaluation.write_text(json.dumps(swept))
    report = _run(
        run_cli,
        "report",
        str(folder / "run"),
        "-o",
        str(out / "R.md"),
        "--evaluation",
        str(evaluation),
    )
    assert report["points"] and (out / "R.md").is_file()


def test_train_and_deploy_print_documents_their_schemas_accept(run_cli, made):
    folder, out = made
    trained = _run(
        run_cli,
        *("train", "--data", "digits", "--limit-train", "64", "--limit-test", "32"),
        *("--ber", "0.05", "--epochs", "1", "--out", str(out / "run")),
    )
    # one point or a sweep alike: by point label
    assert list(trained["final_test_accuracy"]) == ["ber=0.05"]
    assert trained["points"][0]["repeats"][0]["test_accuracy_faulty"] is None
    _run(
        run_cli,
        "deploy",
        str(folder / "run"),
        "-o",
        str(out / "bundle"),
        "--target",
        "raspberry-pi-4",
    )


@pytest.mark.parametrize(
    "args",
    [
        ("mram", "table"),
        ("mram", "wer", "-V", "0.5", "-t", "10ns"),
        ("mram", "wer", "-V", "0.1", "-t", "5ns", "--read"),
        ("mram", "solve", "--wer", "1e-6", "-t", "10ns"),
        ("mram", "retention", "--age", "1y"),
        ("mram", "devices"),
    ],
)
def test_the_mram_commands_print_documents_their_schemas_accept(run_cli, args):
    result = _run(run_cli, *args)
    assert isinstance(result["points" if args[1] != "devices" else "devices"], list)


def test_the_mram_curve_and_fit_print_documents_their_schemas_accept(run_cli, tmp_path):
    from helpers import model_table, write_csv

    _run(run_cli, "mram", "curve", "-o", str(tmp_path / "c.png"), "--points", "5", "--wer", "0.01")
    write_csv(tmp_path / "wer.csv", model_table())
    _run(run_cli, "mram", "fit", str(tmp_path / "wer.csv"), "-o", str(tmp_path / "fitted.toml"))
