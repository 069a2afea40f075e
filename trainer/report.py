"""report.md: the evaluation written for a person, rendered only from the metrics dict.

Every number here is formatted from the dict that `trainer.evaluate` writes to metrics.json
(the run configuration comes from run.json), so the report and the JSON cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainer.files import write_text_atomic

MAX_LISTED_MISTAKES = 20


def fmt(value: float) -> str:
    """The one number format of the report (4 decimals); tests compare through it."""
    return f"{value:.4f}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def interval(bounds: Sequence[float]) -> str:
    return f"[{fmt(bounds[0])}, {fmt(bounds[1])}]"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > 160:
        text = text[:157] + "..."
    return text.replace("|", "\\|").replace("\n", " ")


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    try:
        float(str(value).split(" ")[0])
    except ValueError:
        return False
    return True


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table; columns whose cells all start with a number are right-aligned."""
    numeric = [
        n > 0 and bool(rows) and all(_is_number(row[n]) for row in rows) for n in range(len(header))
    ]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---:" if right else "---" for right in numeric) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _headline(m: Mapping[str, Any], split: str) -> list[str]:
    rows = [
        ["accuracy", f"{fmt(m['accuracy'])} ({pct(m['accuracy'])})"],
        ["95% CI (Wilson)", interval(m["accuracy_ci95"])],
        ["loss (cross-entropy)", fmt(m["loss"])],
        ["images", f"{m['n']} ({m['correct']} correct)"],
    ]
    if "top2_accuracy" in m:
        rows.append(["top-2 accuracy", fmt(m["top2_accuracy"])])
    rows.append(["mean confidence", fmt(m["mean_confidence"])])
    rows.append(["expected calibration error", fmt(m["expected_calibration_error"])])
    open_set = m.get("open_set")
    if open_set:
        rejected = f"{open_set['rejected']} of {m['n']} ({pct(open_set['rejected_rate'])})"
        rows.append(["called unknown", rejected])
        if open_set["accuracy_on_accepted"] is not None:
            accepted = open_set["accuracy_on_accepted"]
            rows.append(
                [
                    "accuracy on the items accepted",
                    f"{fmt(accepted)} ({pct(accepted)}), n = {open_set['accepted']}",
                ]
            )
    dedup = m.get("dedup")
    if dedup and dedup.get("accuracy") is not None:
        rows.append(
            [
                "de-duplicated accuracy",
                f"{fmt(dedup['accuracy'])} ({pct(dedup['accuracy'])}), "
                f"95% CI {interval(dedup['accuracy_ci95'])}, n = {dedup['n']}",
            ]
        )
    evaluation = m.get("evaluation", {})
    if model := evaluation.get("model"):
        rows.insert(0, ["model file", f"{model['file']} (SHA-256 {model['sha256'][:16]}…)"])
    if evaluation:
        rows.append(
            ["test-time augmentation", "horizontal flip" if evaluation.get("tta_flip") else "none"]
        )
    lines = [f"## Headline ({split} split)", "", *_table(["metric", "value"], rows), ""]
    skipped = evaluation.get("skipped", [])
    if skipped:
        lines += [f"{len(skipped)} unreadable image(s) were skipped and are not counted:", ""]
        lines += [f"- `{s['path']}`: {s['reason']}" for s in skipped] + [""]
    return lines


def _dedup(m: Mapping[str, Any], split: str) -> list[str]:
    dedup = m.get("dedup")
    lines = ["## Accuracy without duplicates", ""]
    if not dedup:
        return lines + [
            "No dataset audit was given, so duplicates between this split and train/val were "
            "not removed: the accuracy above may be optimistic.",
            "",
        ]
    lines.append(
        f"{dedup['excluded']} {split} image(s) have an exact or near duplicate in train or val "
        f"(pHash threshold {dedup.get('hash_threshold', '?')}). Without them:"
    )
    lines.append("")
    if dedup.get("accuracy") is None:
        return lines + ["no images are left to score.", ""]
    lines += _table(
        ["n", "correct", "accuracy", "95% CI (Wilson)", "loss"],
        [
            [
                dedup["n"],
                dedup["correct"],
                fmt(dedup["accuracy"]),
                interval(dedup["accuracy_ci95"]),
                fmt(dedup["loss"]),
            ]
        ],
    )
    if dedup.get("excluded_paths"):
        lines += ["", "Excluded:", ""] + [f"- `{p}`" for p in dedup["excluded_paths"]]
    return lines + [""]


def _per_class(m: Mapping[str, Any]) -> list[str]:
    rows = [
        [name, fmt(s["precision"]), fmt(s["recall"]), fmt(s["f1"]), s["support"]]
        for name, s in m["per_class"].items()
    ]
    for label, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        s = m[key]
        rows.append(
            [f"**{label}**", fmt(s["precision"]), fmt(s["recall"]), fmt(s["f1"]), s["support"]]
        )
    return [
        "## Per-class precision, recall and F1",
        "",
        *_table(["class", "precision", "recall", "f1", "support"], rows),
        "",
    ]


def _confusion(m: Mapping[str, Any], picture: str | None) -> list[str]:
    names = m["class_names"]
    lines = ["## Confusion matrix", "", "Rows: true class. Columns: predicted class.", ""]
    if picture:
        lines += [f"![Confusion matrix]({picture})", ""]
    rows = [[f"**{name}**", *row] for name, row in zip(names, m["confusion_matrix"], strict=True)]
    return lines + _table(["true \\ predicted", *names], rows) + [""]


def _training(
    training: Mapping[str, Any] | None, picture: str | None, smoothing: float
) -> list[str]:
    lines = ["## Training curves", ""]
    if not training:
        return lines + ["No training history was recorded for this model.", ""]
    if picture:
        lines += [f"![Training curves]({picture})", ""]
    rows = [["epochs", training["epochs"]]]
    for key in ("accuracy", "val_accuracy", "loss", "val_loss"):
        if f"final_{key}" in training:
            rows.append([f"final {key}", fmt(training[f"final_{key}"])])
    for key in ("val_accuracy", "val_loss"):
        if f"best_{key}" in training:
            best = f"{fmt(training[f'best_{key}'])} (epoch {training[f'best_{key}_epoch']})"
            rows.append([f"best {key}", best])
    lines += _table(["", "value"], rows)
    if smoothing:  # else two val losses of one model differ with no word why
        lines += [
            "",
            f"Training's loss and val_loss include its label smoothing ({smoothing:g}): they are "
            "higher than the cross-entropy above, for the same weights.",
        ]
    return lines + [""]


def artefact_name(name: str, split: str) -> str:
    """The file name of a report artefact for `split` (test keeps the plain name)."""
    stem, dot, suffix = name.partition(".")
    return name if split == "test" else f"{stem}_{split}{dot}{suffix}"


def _mistakes(m: Mapping[str, Any], picture: str | None, split: str) -> list[str]:
    mistakes = m.get("misclassified", [])
    lines = ["## Misclassified images", ""]
    if not mistakes:
        return lines + ["None: every image was classified correctly.", ""]
    lines.append(f"{len(mistakes)} of {m['n']} images, most confident mistakes first.")
    lines.append("")
    if picture:
        lines += [f"![Misclassified images]({picture})", ""]
    rows = [
        [f"`{x['path']}`", x["true"], x["predicted"], fmt(x["confidence"])]
        for x in mistakes[:MAX_LISTED_MISTAKES]
    ]
    lines += _table(["image", "true", "predicted", "confidence"], rows)
    if len(mistakes) > MAX_LISTED_MISTAKES:
        more, listed = len(mistakes) - MAX_LISTED_MISTAKES, artefact_name("predictions.csv", split)
        lines.append(f"\n... and {more} more (see {listed}).")
    return lines + [""]


def _run_config(config: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Run configuration", ""]
    if not config:
        return lines + ["No run.json was found next to this evaluation.", ""]
    rows: list[list[Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            rows += [[f"{key}.{sub}", v] for sub, v in value.items()]
        else:
            rows.append([key, value])
    return lines + _table(["setting", "value"], rows) + [""]


def render_report(
    metrics: Mapping[str, Any],
    split: str = "test",
    *,
    pictures: Mapping[str, str] | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> str:
    """Markdown for `metrics[split]` (and `metrics['training']`), as written to metrics.json.

    pictures: file names relative to the report, keys 'confusion_matrix', 'training_curves',
        'misclassified'; a missing key leaves that picture out.
    """
    if split not in metrics:
        raise KeyError(f"metrics have no '{split}' split")
    m = metrics[split]
    pictures = pictures or {}
    lines = [f"# E-Waste Sorter evaluation: {split} split", ""]
    lines += _headline(m, split)
    lines += _dedup(m, split)
    lines += _per_class(m)
    lines += _confusion(m, pictures.get("confusion_matrix"))
    smoothing = (run_config or {}).get("label_smoothing") or 0
    lines += _training(metrics.get("training"), pictures.get("training_curves"), smoothing)
    lines += _mistakes(m, pictures.get("misclassified"), split)
    lines += _run_config(run_config)
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    path: str | Path,
    metrics: Mapping[str, Any],
    split: str = "test",
    *,
    pictures: Mapping[str, str] | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> Path:
    path = Path(path)
    write_text_atomic(path, render_report(metrics, split, pictures=pictures, run_config=run_config))
    return path
