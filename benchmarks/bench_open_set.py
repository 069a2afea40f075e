"""Unknown items and honest confidence: which open-set score, at which threshold, measured.

    python benchmarks/bench_open_set.py [--model assets/ewaste-classifier.onnx]
        [--data DATASET] [--far-ood DIR] [--out docs/results/open-set]

Validation only (no test image is read): the temperature is fitted on validation, and every
score is compared by three protocols.
  held-out classes  each class in turn is the unknown; a 9-class head trained on the frozen
                    training features scores the validation images of all ten
  far from training the full model on far-off images (--far-ood, e.g. scikit-image's sample
                    photos, plus generated textures, screenshots and flat colours) against
                    the validation images
  shifted knowns    accuracy and unknown rate on station-style variants of the validation
                    images (cut-out on a transparent background, 4:3 crop, blur, JPEG 20,
                    dim and bright, scratches), at each score's threshold
Scores (higher = more likely unknown): 1 - max softmax (at the fitted temperature), -max
logit, energy (-T logsumexp(z/T)), distance to the nearest class centre of the training
features, and 1 - the mean cosine similarity to the k nearest training images.
Each threshold is set as `ewaste-convert open-set` sets the shipped one: the lowest whose
95 % upper bound on the known items' rejection rate, counted on the validation images with no
duplicate in train, stays under --promised-rate (default 0.05).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from bench_common import (
    DEFAULT_DATASET,
    command_line,
    environment,
    markdown_table,
    split_folder,
)
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from converter.open_set import (
    Probe,
    centre_unknown_score,
    class_centres,
    class_radii,
    knn_unknown_score,
    normalised,
    unseen_mask,
)
from desktop.core.assets import default_model_path
from trainer import calibration, plots
from trainer.dataset import load_dataset

KS = (1, 5, 10, 20, 50)
SHIPPED_SCORE = "class centre / radius"  # what `ewaste-convert open-set` builds into the model
VARIANTS = ("cut-out", "crop 4:3", "blur", "jpeg 20", "dim", "bright", "scratched")
Scores = dict[str, np.ndarray]


def labelled(split_dir: Path, names: Sequence[str]) -> tuple[list[Path], np.ndarray]:
    items = sorted(
        (path, names.index(folder.name))
        for folder in split_dir.iterdir()
        if folder.is_dir()
        for path in folder.iterdir()
        if path.is_file()
    )
    return [p for p, _ in items], np.array([label for _, label in items])


def scores_of(
    logits: np.ndarray, features: np.ndarray, bank: np.ndarray, bank_labels: np.ndarray, t: float
) -> Scores:
    """Every candidate score of these images; `bank` is the normalised training features."""
    labels = np.searchsorted(np.unique(bank_labels), bank_labels)
    centres = class_centres(bank, labels, labels.max() + 1)
    radii = class_radii(bank, labels, centres)
    scaled = logits / t
    scores = {
        "1 - max softmax": 1.0 - calibration.softmax(logits, t).max(axis=1),
        "-max logit": -logits.max(axis=1),
        "energy": -t
        * (scaled.max(1) + np.log(np.exp(scaled - scaled.max(1, keepdims=True)).sum(1))),
        "class centre": 1.0 - (normalised(features) @ centres.T).max(axis=1),
        "class centre / radius": centre_unknown_score(features, centres, radii),
    }
    for k in KS:
        scores[f"kNN k={k}"] = knn_unknown_score(features, bank, k)
    return scores


def train_head(features: np.ndarray, labels: np.ndarray, steps: int = 300) -> Callable:
    """A softmax-regression head on frozen features (full-batch gradient descent, L2)."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    x = (features - mean) / std
    classes = np.unique(labels)
    y = np.eye(len(classes))[np.searchsorted(classes, labels)]
    w = np.zeros((x.shape[1], len(classes)))
    b = np.zeros(len(classes))
    for _ in range(steps):
        p = calibration.softmax(x @ w + b)
        grad = p - y
        w -= 0.5 * (x.T @ grad / len(x) + 1e-3 * w)
        b -= 0.5 * grad.mean(0)
    return lambda f: ((f - mean) / std) @ w + b


def promised_threshold(known_scores: np.ndarray, unseen: np.ndarray, rate: float) -> float:
    return calibration.threshold_for_promise(known_scores[unseen], rate).threshold


def held_out_classes(train, val, unseen, names, rate: float) -> dict[str, list[float]]:
    """AUROC of each score with each class in turn held out (unknown); `train` and `val`
    are (features, labels), `unseen` marks the validation images without a train duplicate."""
    (tr_feat, tr_y), (va_feat, va_y) = train, val
    results: dict[str, list[float]] = {}
    for held in range(len(names)):
        known_tr, known_va = tr_y != held, va_y != held
        head = train_head(tr_feat[known_tr], tr_y[known_tr])
        logits = head(va_feat)
        bank = normalised(tr_feat[known_tr])
        scores = scores_of(logits, va_feat, bank, tr_y[known_tr], 1.0)
        for name, score in scores.items():
            auc = calibration.auroc(score[known_va], score[~known_va])
            threshold = promised_threshold(score[known_va], unseen[known_va], rate)
            caught = float((score[~known_va] > threshold).mean())
            results.setdefault(name, []).append(auc)
            results.setdefault(f"{name} caught", []).append(caught)
    return results


def review_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    """For each candidate review threshold: the share of items flagged, the accuracy of
    the rest, and how many of the mistakes the flag catches."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    return [
        {
            "threshold": threshold,
            "flagged": float((confidence < threshold).mean()),
            "accuracy_of_ok": float(right[confidence >= threshold].mean()),
            "mistakes_caught": int((~right & (confidence < threshold)).sum()),
            "mistakes": int((~right).sum()),
        }
        for threshold in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    ]


def far_ood_folder(out: Path, extra: Path | None) -> list[Path]:
    """Generated textures, screenshots and flat colours, plus the images in `extra`."""
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i in range(12):
        noise = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
        if i % 3 == 1:
            noise = np.repeat(noise[:, :1], 150, axis=1)  # stripes
        elif i % 3 == 2:
            noise = np.kron(rng.integers(0, 256, (6, 6, 3)), np.ones((25, 25, 1))).astype(np.uint8)
        paths.append(out / f"texture-{i}.png")
        Image.fromarray(noise).save(paths[-1])
    for i in range(10):
        shot = Image.new("RGB", (400, 300), tuple(int(v) for v in rng.integers(200, 256, 3)))
        draw = ImageDraw.Draw(shot)
        draw.rectangle((0, 0, 400, 24), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
        for line in range(12):
            draw.text(
                (12, 34 + 20 * line), f"Report {i}.{line}: " + "lorem ipsum " * 3, fill=(0, 0, 0)
            )
        paths.append(out / f"screenshot-{i}.png")
        shot.save(paths[-1])
    for i, colour in enumerate([(255, 255, 255), (0, 0, 0), (128, 128, 128), (200, 30, 30)]):
        paths.append(out / f"flat-{i}.png")
        Image.new("RGB", (150, 150), colour).save(paths[-1])
    if extra is not None:
        paths += sorted(p for p in extra.iterdir() if p.is_file())
    return paths


def variant(image: Image.Image, name: str, rng: np.random.Generator) -> Image.Image:
    """A station-style version of a catalogue photo."""
    if name == "cut-out":  # the near-white background made transparent
        rgba = image.convert("RGBA")
        pixels = np.asarray(rgba).copy()
        pixels[(pixels[..., :3] > 235).all(axis=2), 3] = 0
        return Image.fromarray(pixels, "RGBA")
    if name == "crop 4:3":
        w, h = image.size
        return image.crop((0, h // 8, w, h - h // 8))
    if name == "blur":
        return image.filter(ImageFilter.GaussianBlur(2))
    if name == "dim":
        return ImageEnhance.Brightness(image).enhance(0.6)
    if name == "bright":
        return ImageEnhance.Brightness(image).enhance(1.4)
    if name == "scratched":
        scratched = image.copy()
        draw = ImageDraw.Draw(scratched)
        for _ in range(6):
            xy = [int(v) for v in rng.integers(0, min(image.size), 4)]
            draw.line(xy, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=2)
        return scratched
    return image  # "jpeg 20" is the saving itself


def shifted(paths, labels, scratch: Path) -> dict[str, tuple[list[Path], np.ndarray]]:
    rng = np.random.default_rng(1)
    out: dict[str, tuple[list[Path], np.ndarray]] = {}
    for name in VARIANTS:
        written = []
        for index, path in enumerate(paths):
            with Image.open(path) as image:
                made = variant(image.convert("RGB"), name, rng)
            target = scratch / f"{name.replace(' ', '-').replace(':', '')}-{index}"
            if name == "jpeg 20":
                target = target.with_suffix(".jpg")
                made.save(target, quality=20)
            else:
                target = target.with_suffix(".png")
                made.save(target)
            written.append(target)
        out[name] = (written, labels)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--data", type=Path, default=DEFAULT_DATASET.parent)
    parser.add_argument("--far-ood", type=Path, default=None, help="a folder of far-off photos")
    parser.add_argument("--out", type=Path, default=None, help="write report.md and .json here")
    parser.add_argument("--promised-rate", type=float, default=0.05)
    args = parser.parse_args(argv)

    probe = Probe(onnx.load(str(args.model)), str(args.model))
    names = list(probe.info.class_names)
    train_paths, train_y = labelled(split_folder(args.data, "train"), names)
    val_paths, val_y = labelled(split_folder(args.data, "val"), names)
    _, train_feat, _ = probe.run(train_paths)
    val_logits, val_feat, _ = probe.run(val_paths)
    unseen = unseen_mask(load_dataset(args.data), val_paths)
    if unseen.sum() < len(names):  # the thresholds need validation photos not trained on
        parser.error(f"only {unseen.sum()} validation images have no copy in train: too few")
    t = calibration.fit_temperature(val_logits, val_y)
    before, after = calibration.softmax(val_logits), calibration.softmax(val_logits, t)
    bank = normalised(train_feat)

    report = {
        "temperature": t,
        "val_nll": [calibration.nll(val_logits, val_y, 1.0), calibration.nll(val_logits, val_y, t)],
        "val_ece": [
            calibration.expected_calibration_error(before, val_y),
            calibration.expected_calibration_error(after, val_y),
        ],
        "reliability": [
            calibration.reliability(before, val_y),
            calibration.reliability(after, val_y),
        ],
    }
    report["review"] = review_thresholds(after, val_y)
    train, val = (train_feat, train_y), (val_feat, val_y)
    held = held_out_classes(train, val, unseen, names, args.promised_rate)
    known_scores = scores_of(val_logits, val_feat, bank, train_y, t)
    thresholds = {
        n: promised_threshold(s, unseen, args.promised_rate) for n, s in known_scores.items()
    }
    report["val_images_unseen"] = int(unseen.sum())

    def score(paths):
        logits, features, _ = probe.run(paths)
        return logits, scores_of(logits, features, bank, train_y, t)

    with tempfile.TemporaryDirectory() as scratch:
        far_paths = far_ood_folder(Path(scratch) / "far", args.far_ood)
        _, far_scores = score(far_paths)
        shift_rows = shifted_rates(shifted(val_paths, val_y, Path(scratch)), thresholds, score)
    rows = table_rows(report, names, held, known_scores, far_scores, thresholds, shift_rows, val_y)
    report["shifted_accuracy"] = {v: acc for v, acc, _ in shift_rows}
    report["far_ood_images"] = len(far_paths)
    write_outputs(args, render(args, probe, report, rows, shift_rows, len(far_paths)), report)
    return 0


def shifted_rates(variants, thresholds, score) -> list:
    """(variant, 10-class accuracy, share called unknown per score) for each variant."""
    found = []
    for name, (paths, labels) in variants.items():
        logits, scores = score(paths)
        accuracy = float((logits.argmax(1) == labels).mean())
        rates = {n: float((s > thresholds[n]).mean()) for n, s in scores.items()}
        found.append((name, accuracy, rates))
    return found


def table_rows(report, names, held, known_scores, far_scores, thresholds, shift_rows, val_y):
    """The markdown rows, one per score; the same figures go into report["scores"]."""
    rows = []
    for name in known_scores:
        far_auc = calibration.auroc(known_scores[name], far_scores[name])
        caught = float((far_scores[name] > thresholds[name]).mean())
        worst_shift = max(rate[name] for _, _, rate in shift_rows)
        flagged = known_scores[name] > thresholds[name]
        per_class = [float(flagged[val_y == c].mean()) for c in range(len(names))]
        rows.append(
            [
                name,
                f"{100 * flagged.mean():.1f} %",
                f"{np.mean(held[name]):.3f}",
                f"{min(held[name]):.3f}",
                f"{100 * np.mean(held[f'{name} caught']):.0f} %",
                f"{far_auc:.3f}",
                f"{100 * caught:.0f} %",
                f"{100 * max(per_class):.0f} % ({names[int(np.argmax(per_class))]})",
                f"{100 * worst_shift:.0f} %",
            ]
        )
        report.setdefault("scores", {})[name] = {
            "held_out_auroc_mean": float(np.mean(held[name])),
            "held_out_caught_at_threshold": float(np.mean(held[f"{name} caught"])),
            "held_out_auroc_per_class": dict(zip(names, map(float, held[name]), strict=True)),
            "far_auroc": far_auc,
            "far_caught_at_threshold": caught,
            "threshold": thresholds[name],
            "val_rejected_per_class": dict(zip(names, per_class, strict=True)),
            "shifted_unknown_rate": {v: rate[name] for v, _, rate in shift_rows},
        }
    return rows


def write_outputs(args, text: str, report: dict) -> None:
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(text)
        (args.out / "open_set.json").write_text(json.dumps(report, indent=2) + "\n")
        before_bins, after_bins = report["reliability"]
        plots.reliability_diagram(
            {"before (T = 1)": before_bins, f"after (T = {report['temperature']:.2f})": after_bins},
            args.out / "reliability.png",
        )


def render(args, probe, report, rows, shift_rows, far_count) -> str:
    ece_before, ece_after = report["val_ece"]
    nll_before, nll_after = report["val_nll"]
    lines = [
        "# Open-set scores and calibration, on validation only\n",
        f"Model: {args.model.name}  ",
        f"Command: `{command_line()}`  ",
        f"Machine: {environment()}\n",
        f"Temperature fitted on validation: **T = {report['temperature']:.3f}**; NLL "
        f"{nll_before:.3f} -> {nll_after:.3f}, ECE {100 * ece_before:.2f} % -> "
        f"{100 * ece_after:.2f} % ({calibration.ECE_BINS} bins).\n",
        f"Thresholds keep the known items' rejection under {100 * args.promised_rate:.0f} % "
        f"with 95 % confidence, judged on the {report['val_images_unseen']} validation images "
        "without a duplicate in train (one of each set of copies within validation). "
        "Rejected: validation images over it. Held-out: "
        "AUROC over the 10 runs with one class unknown (mean, worst). Far: "
        f"{far_count} far-off images against the validation knowns. Worst class: the "
        "validation class with the most of its images called unknown. Shifted: the largest "
        "share of known variants called unknown.\n",
        markdown_table(
            [
                "score",
                "rejected",
                "held-out AUROC",
                "worst class",
                "held-out caught",
                "far AUROC",
                "far caught",
                "worst class rejected",
                "shifted rejected",
            ],
            rows,
        ),
        "\nReview threshold on the calibrated validation outputs (a row under it is flagged):\n",
        markdown_table(
            ["threshold", "flagged", "accuracy of the rest", "mistakes caught"],
            [
                [
                    f"{r['threshold']:.2f}",
                    f"{100 * r['flagged']:.1f} %",
                    f"{100 * r['accuracy_of_ok']:.2f} %",
                    f"{r['mistakes_caught']} of {r['mistakes']}",
                ]
                for r in report["review"]
            ],
        ),
        "\nShifted validation variants: 10-class accuracy, and the share called unknown by "
        f"the shipped score ({SHIPPED_SCORE}):\n",
        markdown_table(
            ["variant", "accuracy", "called unknown"],
            [
                [name, f"{100 * acc:.1f} %", f"{100 * rates[SHIPPED_SCORE]:.1f} %"]
                for name, acc, rates in shift_rows
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
