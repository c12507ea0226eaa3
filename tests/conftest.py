import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit_code, stdout, stderr)."""
    from xnorfault.cli import main

    def run(*args: str):
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        if exited.value.code == 0 and "--json" in args:
            check_json_output(captured.out)
        return exited.value.code, captured.out, captured.err

    return run


def check_json_output(text: str) -> None:
    """Every ``--json`` output the suite sees is one JSON document with its header that its
    committed schema accepts (xnorfault/schemas): a field added, renamed or of another type
    fails here until the schema says so."""
    import json

    from xnorfault.schemas import validate

    document = json.loads(text)
    assert set(document) >= {"schema", "xnorfault_version"}, sorted(document)
    validate(document)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``tiny_model(*train_args)``: a folder holding ``run/`` (trained with ``train_args``),
    ``model.onnx`` and ``test.npz`` (its export). Each set of arguments is trained and exported
    once per session; every call gets its own copy, so a module may write beside it."""
    import shutil

    from helpers import train_and_export

    made: dict[tuple[str, ...], object] = {}

    def tiny(*train_args: str):
        if train_args not in made:
            made[train_args] = tmp_path_factory.mktemp("tiny-model")
            train_and_export(made[train_args], *train_args)
        copy = tmp_path_factory.mktemp("tiny-copy")
        shutil.copytree(made[train_args], copy, dirs_exist_ok=True)
        return copy

    return tiny


@pytest.fixture(scope="session")
def xnorfault_wheel(tmp_path_factory):
    """xnorfault's wheel, built once a session from this source tree as ``deploy`` builds it
    (the tests that need a wheel share it; ``deploy``'s own build runs in its module fixture)."""
    from xnorfault.deploy import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))
