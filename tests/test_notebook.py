"""notebooks/walkthrough.ipynb, executed top to bottom on its tiny generated dataset: it
calls the project's functions, so a change that breaks it fails here, not in a reader's
hands. Its outputs are never written back to the repository's file."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_the_walkthrough_runs_from_audit_to_the_engine(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [parameters] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = parameters.source.replace(
        'WORK = "walkthrough-output"', f'WORK = "{tmp_path / "out"}"'
    )
    assert str(tmp_path) in parameters.source  # the cell still reads as the test expects

    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "images per split" in printed and "(chance 0.100)" in printed
    assert "parity: random n=" in printed and "of 30 validation photos right" in printed
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert not (NOTEBOOK.parent / "walkthrough-output").exists()
