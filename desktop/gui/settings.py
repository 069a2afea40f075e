"""Typed access to what the app remembers, so key names and defaults live in one place.

The settings are a small JSON file of the app's own, not QSettings: PySide6 unpickles a
Python object stored in a QSettings file when the value is read, so whoever could edit that
file could run code at the app's start. JSON holds only text, numbers and lists. A file that
is not such JSON (hand-edited, cut short) gives the defaults, and the next change replaces
it whole.

Tests and benchmarks pass their own file (`AppSettings.at`); the app uses the per-user
configuration folder. Releases before the JSON file kept their settings with QSettings; on
Linux that INI file is read once, as plain text, for the values a station relies on (the
review threshold above all), when no JSON file exists yet.
"""

from __future__ import annotations

import configparser
import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QStandardPaths

from desktop.core.safe_files import replaced_whole

ORGANIZATION = "E-Waste Sorter"
APPLICATION = "ewaste-app"
SETTINGS_FILE = f"{APPLICATION}.json"
LEGACY_SETTINGS_FILE = f"{APPLICATION}.conf"  # QSettings' INI file on Linux, before the JSON
MAX_SETTINGS_BYTES = 1 << 20  # a window layout and a few folders: far less


class AppSettings:
    """What the window remembers between sessions: folders, layout, threshold, columns, CAM."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._own_path = path is not None
        if path is None:
            folder = QStandardPaths.writableLocation(
                QStandardPaths.StandardLocation.GenericConfigLocation
            )
            path = Path(folder) / ORGANIZATION / SETTINGS_FILE
        self.path = Path(path)
        self._values = _read(self.path)
        legacy = self.path.with_name(LEGACY_SETTINGS_FILE)
        if not self._own_path and not self.path.exists() and legacy.is_file():
            # An upgrade: the threshold a station set must not fall back to 70 % unsaid.
            for key, value in _legacy_values(legacy).items():
                self._set(key, value)

    @classmethod
    def at(cls, path: str | Path) -> AppSettings:
        """Settings stored in the file `path` (tests, benchmarks, screenshots)."""
        return cls(path)

    def data_folder(self) -> Path:
        """Where the app keeps files of its own (an unsaved review): beside a settings file
        given by path, else the platform's per-user application data folder."""
        if self._own_path:
            return self.path.parent
        # Local, not roaming (Windows): the copy names photos on this station's disks.
        location = QStandardPaths.StandardLocation.AppLocalDataLocation
        return Path(QStandardPaths.writableLocation(location))

    # Folders the file dialogs open in.
    def last_dir(self, kind: str) -> str:
        """Last folder used for `kind` ("images", "folder", "export", "model", "watch"),
        else home."""
        value = self._get(f"dirs/{kind}", str, "")
        return value if value and Path(value).is_dir() else str(Path.home())

    def set_last_dir(self, kind: str, folder: str | Path) -> None:
        self._set(f"dirs/{kind}", str(folder))

    # Window layout: opaque blobs from saveGeometry/saveState, kept as base64 text.
    def blob(self, key: str) -> QByteArray | None:
        value = self._get(f"window/{key}", str, "")
        blob = QByteArray.fromBase64(value.encode("ascii", "ignore"))
        return None if blob.isEmpty() else blob

    def set_blob(self, key: str, value: QByteArray) -> None:
        self._set(f"window/{key}", bytes(value.toBase64()).decode("ascii"))

    # Review threshold (a probability in 0..1); `default` where none is stored, or not one.
    def review_threshold(self, default: float) -> float:
        value = self._get("results/review_threshold", (int, float), default)
        return float(value) if 0.0 <= value <= 1.0 else default

    def set_review_threshold(self, value: float) -> None:
        self._set("results/review_threshold", float(value))

    # Hidden probability columns, by class name so they survive a model with other classes.
    def hidden_classes(self) -> set[str]:
        return {name for name in self._get("results/hidden_classes", list, []) if name}

    def set_hidden_classes(self, names: set[str]) -> None:
        self._set("results/hidden_classes", sorted(names))

    # The class activation map overlay in the preview ("Show where the model looked").
    def show_cam(self) -> bool:
        return self._get("preview/show_cam", bool, False)

    def set_show_cam(self, value: bool) -> None:
        self._set("preview/show_cam", bool(value))

    # Run > Average with mirrored image (test-time flip averaging).
    def flip_average(self) -> bool:
        return self._get("run/flip_average", bool, False)

    def set_flip_average(self, value: bool) -> None:
        self._set("run/flip_average", bool(value))

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """The stored value if it is of `kind` (a hand-edited file may hold anything)."""
        value = self._values.get(key, default)
        if isinstance(value, bool) and kind is not bool:
            return default  # JSON's true is no threshold
        if kind is list:
            return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
        return value if isinstance(value, kind) else default

    def _set(self, key: str, value: Any) -> None:
        # The file as it is now, with this one change: a second window's changes stay.
        self._values = {**_read(self.path), key: value}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with replaced_whole(self.path, "w", encoding="utf-8") as handle:
                json.dump(self._values, handle, indent=1, sort_keys=True)
        except OSError:
            pass  # a read-only profile: remembered for this session only


def _legacy_values(path: Path) -> dict[str, Any]:
    """The values worth keeping from an earlier release's QSettings INI file, read as
    text (never through QSettings, which would unpickle a stored Python object): the
    threshold, hidden columns, flags and folders. Anything else, or odd, is left out."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            parser.read_string(handle.read(MAX_SETTINGS_BYTES))
    except (OSError, configparser.Error):
        return {}
    values: dict[str, Any] = {}
    threshold = parser.get("results", "review_threshold", fallback="")
    try:
        if 0.0 <= float(threshold) <= 1.0:
            values["results/review_threshold"] = float(threshold)
    except ValueError:
        pass
    hidden = parser.get("results", "hidden_classes", fallback="")
    if hidden and not hidden.startswith("@"):  # QSettings writes a list "a, b"
        values["results/hidden_classes"] = sorted(
            name.strip().strip('"') for name in hidden.split(", ") if name.strip()
        )
    for key in ("preview/show_cam", "run/flip_average"):
        section, option = key.split("/")
        flag = parser.get(section, option, fallback="")
        if flag in ("true", "false"):
            values[key] = flag == "true"
    if parser.has_section("dirs"):
        for kind, written in parser.items("dirs"):
            # Quoted when it holds "," ";" "=" or ends in a space; escaped with "\\" when
            # it holds other characters: those are left out (the home folder instead).
            quoted = len(written) > 1 and written[0] == written[-1] == '"'
            folder = written[1:-1] if quoted else written
            if folder and not folder.startswith("@") and "\\" not in folder:
                values[f"dirs/{kind}"] = folder
    return values


def _read(path: Path) -> dict[str, Any]:
    """The stored values; empty (the defaults) for a missing, huge or unreadable file."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
        values = json.loads(data) if len(data) <= MAX_SETTINGS_BYTES else {}
    except (OSError, ValueError, RecursionError):
        return {}
    return values if isinstance(values, dict) else {}
