"""``examples/quickstart.ipynb`` runs top to bottom (nbclient, a real Jupyter kernel) on the
embedded digits, and is committed without outputs."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.mark.slow
def test_quickstart_notebook_runs_top_to_bottom(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    text = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "WER 1e-06: 0.835 V" in text  # the paper's conventional point at 10 ns
    assert "2 binary site(s), 3,680 activation bits per image" in text
    assert "lowest write voltage within one point:" in text
    work = tmp_path / "quickstart"
    for name in ("run/record.json", "lenet4.onnx", "faulty.onnx", "test.npz", "voltage_sweep.png"):
        assert (work / name).exists(), name
