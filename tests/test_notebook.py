"""notebooks/walkthrough.ipynb, executed top to bottom on its tiny generated dataset: it
calls the project's functions, so a change that breaks it fails here, not in a reader's
hands. Its outputs are never written back to the repository's file."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_the_walkthrough_runs_from_audit_to_the_engine_and_runs_again(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [parameters] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = parameters.source.replace(
        'WORK = "walkthrough-output"', f'WORK = "{tmp_path / "out"}"'
    )
    assert str(tmp_path) in parameters.source  # the cell still reads as the test expects

    printed = executed(notebook, tmp_path)
    assert "images per split" in printed and "(chance 0.100)" in printed
    assert "parity: random n=" in printed and "of 30 validation photos right" in printed
    assert (tmp_path / "out" / "run-1" / "model.onnx").is_file()
    assert not (NOTEBOOK.parent / "walkthrough-output").exists()

    # Run again (Restart & Run All), now with an unreadable photo among the first shown:
    # a second run of its own, and the photo an error row, not a TypeError.
    broken = tmp_path / "out" / "tiny-dataset" / "val" / "Battery" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    printed = executed(notebook, tmp_path)
    assert "of 31 validation photos right" in printed
    assert (tmp_path / "out" / "run-2" / "model.onnx").is_file()
    shown = "".join(
        output.get("data", {}).get("text/markdown", "")
        for output in notebook.cells[-1].get("outputs", [])
    )
    assert "| broken.jpg | (" in shown and "| error |" in shown


def executed(notebook: nbformat.NotebookNode, folder: Path) -> str:
    """Run every cell of `notebook` in a fresh kernel; what its cells printed."""
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    ).execute()
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
