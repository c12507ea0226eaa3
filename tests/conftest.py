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
        return exited.value.code, captured.out, captured.err

    return run
