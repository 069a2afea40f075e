"""The batch summary a shift report needs: counts per class and status, as a bar chart.

One picture, drawn with Pillow (the station has no plotting library), for both the
headless `--summary PNG` and the app's View > Batch summary: a stacked bar per class (ok,
needs review, each count also in words), the unknown items and the errors apart (an unknown
item is most likely none of the classes, and the sort files it under _review, not in its
nearest class), the model file and its SHA-256, the review threshold and the date.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .results import STATUS_ERROR, STATUS_OK, STATUS_REVIEW, STATUS_UNKNOWN, Prediction, status_of
from .safe_files import replaced_whole
from .wording import plural

# The status colours as RGB, the picture's and the app's (desktop.gui.style): each at least
# 4.5:1 on white and on the app's grey window (239), as text needs (WCAG AA).
COLOURS = {
    STATUS_OK: (27, 122, 61),
    STATUS_REVIEW: (150, 80, 0),
    STATUS_UNKNOWN: (120, 60, 170),
    STATUS_ERROR: (190, 30, 30),
}
BAR_STATUSES = (STATUS_OK, STATUS_REVIEW)
WIDTH, ROW_HEIGHT, LABEL_WIDTH, MARGIN = 900, 34, 190, 24
# Pillow's own font draws every letter outside ASCII as one box ("Batterie usag□e"): a
# system font with accents comes first (Pillow looks in the system's font folders).
SYSTEM_FONTS = ("DejaVuSans.ttf", "arial.ttf", "Arial.ttf", "LiberationSans-Regular.ttf")


@dataclass
class BatchSummary:
    class_names: list[str]
    threshold: float
    model_name: str
    model_sha256: str
    when: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M"))
    # (class, status) -> photos; the class is a person's confirmed one when set.
    counts: Counter = field(default_factory=Counter)
    unknown: int = 0  # unknown items nobody gave a class
    errors: int = 0
    # Photos per model, where rows name theirs and more than one made the batch (the app
    # keeps rows when a model of the same classes is opened); else empty.
    models: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.unknown + self.errors

    def of(self, class_name: str, status: str) -> int:
        return self.counts[(class_name, status)]

    def models_line(self) -> str:
        """Which model classified how many photos, for a batch of more than one; else ""."""
        if not self.models:
            return ""
        made = [f"{count} by {name} ({sha[:12]}…)" for (name, sha), count in self.models.items()]
        return "Classified by more than one model: " + ", ".join(made)

    def split(self, class_name: str) -> str:
        """A class's photos by status in words, e.g. "12 ok · 3 to review"."""
        ok, review = (self.of(class_name, status) for status in BAR_STATUSES)
        return f"{ok} ok · {review} to review"

    def unknown_line(self) -> str:
        return f"{plural(self.unknown, 'unknown item')}: like none of these classes"

    def errors_line(self) -> str:
        return f"{self.errors} could not be read (error)"

    def as_text(self) -> str:
        """The picture's counts in words, for a screen reader: the bars are only colours."""
        classes = [f"{name}: {self.split(name)}" for name in self.class_names]
        lines = [plural(self.total, "photo"), *classes, self.unknown_line(), self.errors_line()]
        return ". ".join(lines) + "."

    def caption(self) -> str:
        """The line under the title; the threshold as given (95.5 %, not a rounded 96 %)."""
        return (
            f"{self.when} · model {self.model_name} (SHA-256 {self.model_sha256[:16]}…)"
            f" · review below {self.threshold * 100:g} %"
        )


def summarise(
    predictions: Iterable[Prediction],
    class_names: Sequence[str],
    threshold: float,
    *,
    model_name: str,
    model_sha256: str,
    confirmed: Mapping[str, str] | None = None,
) -> BatchSummary:
    summary = BatchSummary(list(class_names), threshold, model_name, model_sha256)
    made_by: Counter = Counter()  # SHA-256 -> photos; one file under two names is one model
    names = {model_sha256: model_name}
    for prediction in predictions:
        name, sha256 = prediction.model or (model_name, model_sha256)
        names.setdefault(sha256, name)
        made_by[sha256] += prediction.ok
        status = status_of(prediction, threshold)
        if status == STATUS_ERROR:
            summary.errors += 1
            continue
        person = (confirmed or {}).get(prediction.path)
        if status == STATUS_UNKNOWN and not person:
            summary.unknown += 1
            continue
        name = person or class_names[prediction.top_index]
        summary.counts[(name, STATUS_OK if person else status)] += 1
    made = +made_by
    if len(made) == 1:  # one model made every row: the one loaded before, maybe
        [summary.model_sha256] = made
        summary.model_name = names[summary.model_sha256]
    elif made:
        summary.models = Counter({(names[sha], sha): count for sha, count in made.items()})
    return summary


def render(summary: BatchSummary, scale: int = 1) -> Image.Image:
    """The summary as an RGB picture, `WIDTH` pixels wide times `scale` (2 for a sharp
    picture on a screen scaled 200 %)."""

    def px(value: float) -> int:
        return round(value * scale)

    rows = len(summary.class_names)
    models_line = summary.models_line()
    height = MARGIN * 2 + 78 + ROW_HEIGHT * rows + 80 + (24 if models_line else 0)
    picture = Image.new("RGB", (px(WIDTH), px(height)), "white")
    draw = ImageDraw.Draw(picture)
    title, text, small = (font_of_size(px(s)) for s in (20, 15, 13))
    caption = f"Batch summary: {summary.total} photos"
    draw.text((px(MARGIN), px(MARGIN)), caption, fill="black", font=title)
    draw.text((px(MARGIN), px(MARGIN + 30)), summary.caption(), fill=(90, 90, 90), font=small)
    _legend(draw, MARGIN + 52, small, px)
    largest = max([sum(summary.of(n, s) for s in BAR_STATUSES) for n in summary.class_names] + [1])
    # Each bar's split in words beside it: its green and amber parts differ by colour only,
    # which a protanope cannot tell apart. The bars leave room for the widest.
    counts = {name: _bar_counts(summary, name) for name in summary.class_names}
    widest = max([draw.textlength(line, font=text) / scale for line in counts.values()] + [0])
    scale_bar = (WIDTH - LABEL_WIDTH - MARGIN * 2 - 8 - widest) / largest
    top = MARGIN + 78
    for index, name in enumerate(summary.class_names):
        y = top + index * ROW_HEIGHT
        label = _fitted(draw, name, text, px(LABEL_WIDTH - 12))
        draw.text((px(MARGIN), px(y + 8)), label, fill="black", font=text)
        x = MARGIN + LABEL_WIDTH
        for status in BAR_STATUSES:
            width = summary.of(name, status) * scale_bar
            if width:
                box = (px(x), px(y + 6), px(x + width), px(y + ROW_HEIGHT - 6))
                draw.rectangle(box, fill=COLOURS[status])
            x += width
        draw.text((px(x + 8), px(y + 8)), counts[name], fill="black", font=text)
    y = top + rows * ROW_HEIGHT + 16
    unknown = summary.unknown_line()
    draw.text((px(MARGIN), px(y)), unknown, fill=COLOURS[STATUS_UNKNOWN], font=text)
    errors = summary.errors_line()
    draw.text((px(MARGIN), px(y + 24)), errors, fill=COLOURS[STATUS_ERROR], font=text)
    if models_line:
        line = _fitted(draw, models_line, small, px(WIDTH - 2 * MARGIN))
        draw.text((px(MARGIN), px(y + 50)), line, fill="black", font=small)
    return picture


def _bar_counts(summary: BatchSummary, class_name: str) -> str:
    """What a class's bar says beside it: "15 (12 ok · 3 to review)", or "0"."""
    total = sum(summary.of(class_name, status) for status in BAR_STATUSES)
    return f"{total} ({summary.split(class_name)})" if total else "0"


def _fitted(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """`text`, cut short with "…" where it is wider than `width` (it would run into the bar)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


@functools.lru_cache(maxsize=8)
def font_of_size(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The first of SYSTEM_FONTS found here, else Pillow's own (ASCII letters only)."""
    for name in SYSTEM_FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:  # not on this system
            continue
    return ImageFont.load_default(size=size)


def _legend(
    draw: ImageDraw.ImageDraw, y: int, font: ImageFont.ImageFont, px: Callable[[float], int]
) -> None:
    x = MARGIN
    for status, label in ((STATUS_OK, "ok"), (STATUS_REVIEW, "needs review")):
        draw.rectangle((px(x), px(y + 2), px(x + 14), px(y + 14)), fill=COLOURS[status])
        draw.text((px(x + 20), px(y)), label, fill="black", font=font)
        x += 150


def save_png(summary: BatchSummary, path: str | os.PathLike[str]) -> Path:
    """Write the picture whole or not at all (see `replaced_whole`)."""
    target = Path(path)
    picture = render(summary)
    with replaced_whole(target, "wb") as handle:
        picture.save(handle, format="PNG")
    return target
