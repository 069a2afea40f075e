"""Typed access to the app's QSettings, so key names and defaults live in one place.

Tests and benchmarks pass their own QSettings (an INI file in a temporary folder); the app
uses the per-user default location.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

ORGANIZATION = "E-Waste Sorter"
APPLICATION = "ewaste-app"


class AppSettings:
    """What the window remembers between sessions: folders, layout, threshold, columns, CAM."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self._s = settings if settings is not None else QSettings(ORGANIZATION, APPLICATION)

    @classmethod
    def at(cls, path: str | Path) -> AppSettings:
        """Settings stored in the INI file `path` (tests, benchmarks, screenshots)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    @property
    def qsettings(self) -> QSettings:
        return self._s

    def data_folder(self) -> Path:
        """Where the app keeps files of its own (an unsaved review): beside an INI file,
        else the platform's per-user application data folder."""
        if self._s.format() == QSettings.Format.IniFormat:
            return Path(self._s.fileName()).parent
        # Local, not roaming (Windows): the copy names photos on this station's disks.
        location = QStandardPaths.StandardLocation.AppLocalDataLocation
        return Path(QStandardPaths.writableLocation(location))

    def sync(self) -> None:
        self._s.sync()

    # Folders the file dialogs open in.
    def last_dir(self, kind: str) -> str:
        """Last folder used for `kind` ("images", "folder", "export", "model"), else home."""
        value = self._s.value(f"dirs/{kind}", "", str)
        return value if value and Path(value).is_dir() else str(Path.home())

    def set_last_dir(self, kind: str, folder: str | Path) -> None:
        self._s.setValue(f"dirs/{kind}", str(folder))

    # Window layout: opaque blobs from saveGeometry/saveState.
    def blob(self, key: str) -> QByteArray | None:
        value = self._s.value(f"window/{key}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_blob(self, key: str, value: QByteArray) -> None:
        self._s.setValue(f"window/{key}", value)

    # Review threshold (a probability in 0..1); None means "use the engine's default".
    def review_threshold(self, default: float) -> float:
        value = self._s.value("results/review_threshold", default)
        try:
            threshold = float(value)
        except (TypeError, ValueError):
            return default
        return threshold if 0.0 <= threshold <= 1.0 else default

    def set_review_threshold(self, value: float) -> None:
        self._s.setValue("results/review_threshold", float(value))

    # Hidden probability columns, by class name so they survive a model with other classes.
    def hidden_classes(self) -> set[str]:
        value = self._s.value("results/hidden_classes", [])
        if isinstance(value, str):  # QSettings returns a lone string for one-element lists
            value = [value] if value else []
        return {str(v) for v in value or []}

    def set_hidden_classes(self, names: set[str]) -> None:
        self._s.setValue("results/hidden_classes", sorted(names))

    # The class activation map overlay in the preview ("Show where the model looked").
    def show_cam(self) -> bool:
        return self._flag("preview/show_cam")

    def set_show_cam(self, value: bool) -> None:
        self._s.setValue("preview/show_cam", bool(value))

    # Run > Average with mirrored image (test-time flip averaging).
    def flip_average(self) -> bool:
        return self._flag("run/flip_average")

    def set_flip_average(self, value: bool) -> None:
        self._s.setValue("run/flip_average", bool(value))

    def _flag(self, key: str) -> bool:
        value = self._s.value(key, False)
        if isinstance(value, str):  # an INI file gives back "true" / "false"
            return value.lower() == "true"
        return bool(value)
