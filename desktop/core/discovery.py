"""Turn the files and folders a user gave (command line, drag and drop) into image paths.

Folders are walked recursively without ever following a symbolic-link cycle: each folder is
identified by its (device, inode), so a link back to an enclosing folder is reported once
and skipped instead of being walked forever. Anything that cannot be used becomes a
`Prediction` error row, so the user sees it in the results instead of it vanishing.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .preprocessing import SUPPORTED_SUFFIXES, is_photo_file
from .results import FileState, Prediction

_SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_SUFFIXES))


@dataclass
class Collection:
    """What `collect_images` found.

    images: image files to classify, sorted, each file once however it was reached (see
        `FileKeys`), as absolute paths (made absolute with os.path.abspath, so the names
        of symbolic links the user chose are kept: the first name found is used).
        HEIC and RAW photos are among them: their decoding fails with advice.
    skipped: files inside folders that are not images, counted so the summary can say so.
        Hidden files and the system's folder clutter (Thumbs.db, desktop.ini) are not
        counted: a worker did not put them there and has nothing to do about them.
    problems: error rows for paths the user should hear about: missing paths, folders that
        cannot be read, link loops, broken links, non-image files given explicitly.
    """

    images: list[Path] = field(default_factory=list)
    skipped: int = 0
    problems: list[Prediction] = field(default_factory=list)


def collect_images(
    paths: Iterable[str | os.PathLike[str]],
    should_stop: Callable[[], bool] | None = None,
) -> Collection:
    """Collect the images in `paths` (files and folders, recursively).

    Hidden entries (names starting with '.') and folder clutter inside folders are left out
    without a count: they are thumbnail caches and macOS '._' resource files, not photos.
    A hidden file given explicitly is used.
    `should_stop` is checked between folders; a stopped walk returns what it found so far.
    Every path returned (images and problem rows) is absolute: the CLI's CSV and the GUI's
    then name a file the same way, whatever the current folder was.
    """
    walker = _Walker(should_stop or (lambda: False))
    for raw in paths:
        if walker.stopped():
            break
        walker.add_argument(Path(os.path.abspath(raw)))
    return walker.result()


class _Walker:
    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop
        self._key = FileKeys()
        self._images: dict[str, Path] = {}  # file key -> path as first found
        self._problem_keys: set[str] = set()
        self._visited_folders: set[tuple[int, int]] = set()
        self._skipped = 0
        self._problems: list[Prediction] = []

    def stopped(self) -> bool:
        return self._should_stop()

    def result(self) -> Collection:
        images = sorted(self._images.values(), key=str)
        return Collection(images=images, skipped=self._skipped, problems=self._problems)

    def add_argument(self, path: Path) -> None:
        try:
            info = path.stat()
        except OSError as exc:
            self._problem(path, _unreachable_reason(path, exc))
            return
        except UnicodeEncodeError:
            # A name from a window (Qt speaks UTF-8) under a locale of 8-bit names (LANG=
            # fr_FR, ISO-8859-1): it cannot be said to the system; its folder's listing can.
            encoding = sys.getfilesystemencoding()
            reason = f"its name cannot be written in this system's {encoding} file names"
            self._problem(path, f"{reason}; add the folder that holds it instead")
            return
        if stat.S_ISDIR(info.st_mode):
            self._walk(path, info)
        elif not stat.S_ISREG(info.st_mode):
            self._problem(path, "not a regular file (a device, pipe or socket)")
        elif is_photo_file(path):
            self._add_image(path)
        else:
            suffix = path.suffix or "no suffix"
            self._problem(
                path, f"not a supported image type ({suffix}); supported: {_SUPPORTED_LIST}"
            )

    def _walk(self, top: Path, top_info: os.stat_result) -> None:
        # Iterative depth-first walk; each stack entry carries the identities of its
        # enclosing folders, which is what tells a loop from a second link to a folder.
        stack: list[tuple[Path, os.stat_result, frozenset[tuple[int, int]]]] = [
            (top, top_info, frozenset())
        ]
        while stack and not self.stopped():
            folder, info, ancestors = stack.pop()
            identity = (info.st_dev, info.st_ino)
            if identity in ancestors:
                self._problem(folder, "folder link loops back to an enclosing folder; skipped")
                continue
            if identity in self._visited_folders:
                continue  # reached again through another link: its images are already in
            self._visited_folders.add(identity)
            subfolders = self._scan(folder)
            inner = ancestors | {identity}
            # Reversed, so the stack pops subfolders in name order.
            stack.extend((sub, sub_info, inner) for sub, sub_info in reversed(subfolders))

    def _scan(self, folder: Path) -> list[tuple[Path, os.stat_result]]:
        """Record the files of one folder; return its subfolders, sorted by name."""
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            self._problem(folder, f"cannot open folder: {_describe(exc)}")
            return []
        subfolders = []
        for entry in entries:
            path = folder / entry.name
            if is_clutter(entry.name):
                continue
            try:
                info = os.stat(entry.path)  # follows links: a link to a folder is walked
            except OSError as exc:
                # A folder that cannot be reached (a path deeper than the OS allows, say)
                # is named, never counted as a skipped file.
                if is_photo_file(path) or _is_dir(entry):
                    self._problem(path, _unreachable_reason(path, exc))
                else:
                    self._skipped += 1
                continue
            if stat.S_ISDIR(info.st_mode):
                subfolders.append((path, info))
            elif stat.S_ISREG(info.st_mode) and is_photo_file(path):
                self._add_image(path)
            elif is_photo_file(path):
                self._problem(path, "not a regular file (a device, pipe or socket)")
            else:
                self._skipped += 1
        return subfolders

    def _add_image(self, path: Path) -> None:
        self._images.setdefault(self._key(path), path)

    def _problem(self, path: Path, reason: str) -> None:
        key = self._key(path)
        if key not in self._problem_keys:  # a path given twice is reported once
            self._problem_keys.add(key)
            self._problems.append(Prediction.failed(str(path), reason))


# What Windows and macOS write into photo folders (and zips of them) by themselves.
_FOLDER_CLUTTER = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r", "__macosx"})


def is_clutter(name: str) -> bool:
    """Whether a file or folder name is the system's, not the user's: hidden names (macOS
    '._' resource forks among them), thumbnail caches and the __MACOSX folder of a zip."""
    return name.startswith(".") or name.lower() in _FOLDER_CLUTTER


class FileKeys:
    """One key per file however its path is spelt: 'a/x.jpg' and './a/x.jpg', 'A\\X.JPG' on
    Windows, or its folder reached through a symbolic link or a junction. Each
    folder's real path is looked up once, so 20,000 photos in a few folders cost a few calls.
    (A link to the file itself keeps its own key.)"""

    def __init__(self) -> None:
        self._real_folders: dict[str, str] = {}

    def __call__(self, path: str | os.PathLike[str]) -> str:
        folder, name = os.path.split(os.path.abspath(path))
        real = self._real_folders.get(folder)
        if real is None:
            real = self._real_folders[folder] = os.path.realpath(folder)
        return os.path.normcase(os.path.join(real, name))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _unreachable_reason(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link leads back to itself)"
    if isinstance(exc, FileNotFoundError):
        return "broken symbolic link (its target is missing)" if path.is_symlink() else "not found"
    return f"cannot access: {_describe(exc)}"


def _describe(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def file_state(path: str | os.PathLike[str]) -> FileState | None:
    """The size and modification time that tell one photo under a name from another (a
    camera's counter reset), or None when the file cannot be looked at now."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)
