"""What every part of `ewaste-classify` shares: exit statuses, the usage error, the one-line
error and warning messages and the check of an output path made before any work."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .limits import MAX_FILE_NAME_BYTES
from .safe_files import probe_writing
from .sort_manifest import MANIFEST_FILE

PROG = "ewaste-classify"
EXIT_OK = 0
EXIT_WRITE_FAILED = 1
EXIT_USAGE = 2
EXIT_RUN_FAILED = 3
# A one-time sort or undo waits this long for another one in its DEST: a watch holds it for
# a moment at each batch, which must not fail a cron job; a person's long sort does.
BUSY_GIVE_UP_SECONDS = 60.0


class UsageError(Exception):
    """A problem with the command line the user can fix; the message says how."""


def checked_output_path(raw: str, option: str = "--csv", example: str = "results.csv") -> Path:
    """The path given to `option` (the CSV, the summary PNG), checked before any work: a
    writable folder and a name that can be written, not a link or a device (the output
    replaces the file at this path)."""
    if not raw.strip():
        raise UsageError(f"{option} needs a file name, such as {example}")
    output = Path(raw)
    if len(os.fsencode(output.name)) > MAX_FILE_NAME_BYTES:
        raise UsageError(
            f"{option} file name is {len(os.fsencode(output.name))} bytes; file systems allow "
            f"{MAX_FILE_NAME_BYTES}: give a shorter name"
        )
    if raw.endswith(("/", os.sep)) or output.is_dir():
        folder = raw.rstrip("/" + os.sep)
        raise UsageError(f"{option} {raw} is a folder; give a file name such as {folder}/{example}")
    if output.is_symlink() or (output.exists() and not output.is_file()):
        raise UsageError(
            f"{option} {raw} is a link or a special file, not a regular file; the output "
            "would replace it: give the path of a regular file"
        )
    folder = output.parent
    try:
        whole = os.path.abspath(folder)  # "." in a cron mail names no folder
    except OSError:  # the working folder was deleted: "." it is
        whole = str(folder)
    if not folder.is_dir():
        raise UsageError(f"output folder does not exist: {whole} (create it first)")
    try:
        probe_writing(folder)
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {whole}: {exc.strerror or exc}") from exc
    return output


def check_csv_is_not_the_manifest(output: Path, dest: Path | None) -> None:
    """Refuse --csv DEST/manifest.csv with --sort-into DEST before any work: the results
    would take the manifest's place, and the sort after classifying would refuse it."""
    if dest is not None and output.resolve() == dest.resolve() / MANIFEST_FILE:
        raise UsageError(
            f"--csv {output} is where the sort into {dest} keeps its manifest: "
            "give the results another name"
        )


def error(message: str) -> None:
    # One line, even when a reason (e.g. from ONNX Runtime) spans several.
    print(f"{PROG}: error: {' '.join(message.splitlines())}", file=sys.stderr)


def warning(message: str) -> None:
    """Something the user should see that does not fail the run (it is also a CSV row)."""
    print(f"{PROG}: warning: {' '.join(message.splitlines())}", file=sys.stderr)
