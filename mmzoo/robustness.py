"""Robustness of a trained model to corrupted inputs (`mmzoo robustness`).

MultiBench's robustness protocol (Liang et al., "MultiBench: Multiscale
Benchmarks for Multimodal Representation Learning", NeurIPS 2021 Datasets
and Benchmarks): the model of a finished run folder is evaluated on its
test split while ONE modality at a time is corrupted at growing levels
(0 = clean, 1 = the strongest), and once with that modality removed.
The corruptions act on the raw values a client sends, through the task
interface (`mmzoo.data.corruptions.CorruptedInputs` around the run's
preprocessor), so every registered model is covered with no per-model
code. See `mmzoo.data.corruptions` for what each corruption does.

```
run folder ─► load_run + train.json ─► task.prepare (same data, seed,
split) ─► run's config and preprocessor ─► task.evaluate(test) clean, then
per modality × corruption × level with CorruptedInputs ─►
robustness.json / .txt / .png in the run folder
```

Example:
>>> report = robustness_report("logs/lstnet_diagnosis/20250101-120000")
>>> report["metric"], report["clean_value"]
('auroc', 0.91)
"""

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import zlib

from mmzoo import registry
from mmzoo.data.corruptions import (
    CORRUPTIONS,
    REMOVED,
    CorruptedInputs,
    Modality,
    audio_noise,
    blur,
    gaussian_noise,
    input_modalities,
    make_corruption,
    missing,
    occlusion,
    removed,
    typos,
    word_dropout,
)
from mmzoo.training import ARGUMENTS_FILE, load_run

__all__ = [
    "CORRUPTIONS",
    "CorruptedInputs",
    "DEFAULT_LEVELS",
    "Modality",
    "audio_noise",
    "blur",
    "gaussian_noise",
    "input_modalities",
    "make_corruption",
    "missing",
    "occlusion",
    "removed",
    "robustness_report",
    "typos",
    "word_dropout",
]

DEFAULT_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
SPLIT = "test"
JSON_FILE = "robustness.json"
TEXT_FILE = "robustness.txt"
PLOT_FILE = "robustness.png"

DESCRIPTIONS = {
    "gaussian_noise": "pixel noise of sigma = level * 128 (pixels 0..255)",
    "blur": "Gaussian blur of sigma = level * S / 8 px (S: shorter side)",
    "occlusion": "128-gray rectangle (image aspect ratio) over `level` of "
    "the area",
    "word_dropout": "each word dropped with probability `level`",
    "typos": "each letter replaced by a random lowercase letter with "
    "probability level / 2",
    "noise": "white noise of std = level * 2 * RMS (SNR -6 dB at 1)",
    "missing": 'each value missing (NaN, or "" for strings) with '
    "probability `level`",
    REMOVED: 'the whole modality missing ("" / NaN / no frames) in every '
    "row; shown under level 1",
}
"""One line per corruption, for the table's notes."""


def check_levels(levels):
    """Sorted, distinct float levels within 0..1.

    Raises:
        ValueError: no level, or one outside 0..1 (echoing it).
    """
    values = sorted({float(level) for level in levels})
    if not values:
        raise ValueError("robustness: give at least one level in 0..1")
    bad = [v for v in values if not 0.0 <= v <= 1.0 or math.isnan(v)]
    if bad:
        raise ValueError(
            f"robustness: levels must be within 0..1, got {bad[0]:g}"
        )
    return tuple(values)


def robustness_report(
    run_dir,
    data_dir=None,
    levels=DEFAULT_LEVELS,
    batch_size=None,
    seed=0,
    verbose=True,
):
    """Evaluates a finished run under corruption of one modality at a time.

    Writes `robustness.json` (the returned dict), `robustness.txt` (the
    table) and `robustness.png` (one panel per modality) into `run_dir`.

    Args:
        run_dir: str. A finished run folder of `mmzoo train`.
        data_dir: str or None. The dataset's folder when it moved; defaults
            to the one recorded in `train.json`. Synthetic datasets are
            written again (same seed) into a temporary folder.
        levels: sequence of float in 0..1. Corruption levels; 0 is the
            clean test split (evaluated once). Defaults to
            `(0, 0.25, 0.5, 0.75, 1)`.
        batch_size: int or None. Defaults to the run's `batch_size`.
        seed: int. Seeds every corruption's draws (stateless: the same
            seed gives the same corrupted inputs). Defaults to 0.
        verbose: bool. Log each evaluation to stderr and print the table.

    Returns:
        dict with `model`, `dataset`, `split`, `metric` (the task's first
        headline metric the evaluation returns), `clean` (every clean
        metric), `clean_value`, `levels`, `seed`, `batch_size`,
        `modalities`, `rows` (one per modality × corruption × level, plus
        `removed` at level 1: `modality`, `kind`, `inputs`, `corruption`,
        `level`, `value`, `metrics`) and `notes`.

    Raises:
        ValueError: an unfinished run folder (see `load_run`), a run
            without `train.json`, a bad level, or a recorded data folder
            that is gone (pass `data_dir`).
    """
    levels = check_levels(levels)
    name, model, config, preprocessor, _ = load_run(run_dir)
    arguments = _arguments(run_dir)
    task = registry.get_task(name)
    dataset = arguments["dataset"]
    data_dir = data_dir or arguments.get("data_dir")
    if data_dir and not os.path.exists(data_dir):
        raise ValueError(
            f"robustness: the data folder {data_dir} of {run_dir} is not "
            "there; pass the dataset's folder with --data-dir"
        )
    batch_size = int(batch_size or getattr(config, "batch_size", 32))

    def log(message):
        if verbose:
            print(f"robustness: {message}", file=sys.stderr, flush=True)

    scratch = tempfile.mkdtemp(prefix="mmzoo-robustness-")
    try:
        recorded = registry.get_config(
            name,
            arguments.get("variant", "base"),
            **_tuples(arguments.get("overrides") or {}),
        )
        prepared = task.prepare(
            recorded, dataset, data_dir, scratch, int(arguments.get("seed", 0))
        )
        prepared = dataclasses.replace(
            prepared, config=config, preprocessor=preprocessor
        )
        report = _evaluate_all(
            task, model, prepared, levels, batch_size, int(seed), log
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "model": name,
        "dataset": dataset,
        "data_dir": data_dir,
        "run_dir": os.path.abspath(run_dir),
        "split": SPLIT,
        "levels": list(levels),
        "seed": int(seed),
        "batch_size": batch_size,
        **report,
    }
    table = format_table(report)
    _write_atomic(
        os.path.join(run_dir, JSON_FILE), json.dumps(report, indent=1)
    )
    _write_atomic(os.path.join(run_dir, TEXT_FILE), table + "\n")
    plot_report(report, os.path.join(run_dir, PLOT_FILE))
    if verbose:
        print(table, flush=True)
    return report


def _arguments(run_dir):
    path = os.path.join(run_dir, ARGUMENTS_FILE)
    if not os.path.exists(path):
        raise ValueError(
            f"robustness: {run_dir} has no {ARGUMENTS_FILE} (the run's "
            "dataset, data folder and seed); it was not written by "
            "`mmzoo train`"
        )
    with open(path) as f:
        return json.load(f)


def _tuples(value):
    """JSON lists back to tuples (config overrides), recursively."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def corruption_seed(seed, level, modality, input_name):
    """The draws' seed of one input of `modality` at `level`: a hash of
    all four, so levels, modalities and the columns of one tabular group
    draw independently, and a level draws the same whatever others are
    asked for."""
    text = f"{int(seed)}/{float(level)!r}/{modality}/{input_name}"
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def headline_metric(task, metrics):
    """The first of `task.headline_metrics` in `metrics` (else `loss`,
    else the first name)."""
    for name in (*task.headline_metrics, "loss"):
        if name in metrics:
            return name
    return sorted(metrics)[0]


def _evaluate_all(task, model, prepared, levels, batch_size, seed, log):
    def evaluate(corruptions):
        wrapped = CorruptedInputs(prepared.preprocessor, corruptions)
        corrupted = dataclasses.replace(prepared, preprocessor=wrapped)
        return task.evaluate(model, corrupted, SPLIT, batch_size)

    clean = task.evaluate(model, prepared, SPLIT, batch_size)
    metric = headline_metric(task, clean)
    log(f"clean: {metric} {clean[metric]:.4f}")
    modalities = input_modalities(prepared.preprocessor)
    all_inputs = {name for m in modalities for name in m.inputs}
    rows, notes, described = [], [], []
    summary = []
    for modality in modalities:
        entry = {
            "name": modality.name,
            "kind": modality.kind,
            "inputs": list(modality.inputs),
            "corruptions": list(modality.corruptions),
            "removed": False,
        }
        summary.append(entry)
        if not modality.corruptions:
            notes.append(
                f"{modality.name} ({modality.kind}: "
                f"{', '.join(modality.inputs)}): not corrupted (no "
                "corruption and no missing value for this kind)"
            )
            continue

        def row(corruption, level, metrics, modality=modality):
            return {
                "modality": modality.name,
                "kind": modality.kind,
                "inputs": list(modality.inputs),
                "corruption": corruption,
                "level": level,
                "value": metrics[metric],
                "metrics": metrics,
            }

        for corruption in modality.corruptions:
            if corruption not in described:
                described.append(corruption)
            for level in levels:
                if level == 0:
                    rows.append(row(corruption, level, clean))
                    continue
                metrics = evaluate(
                    {
                        name: make_corruption(
                            corruption,
                            level,
                            corruption_seed(seed, level, modality.name, name),
                            spec,
                        )
                        for name, spec in _inputs_and_specs(modality)
                    }
                )
                rows.append(row(corruption, level, metrics))
                log(
                    f"{modality.name} {corruption} {level:g}: {metric} "
                    f"{metrics[metric]:.4f}"
                )
        if not modality.has_missing_value:
            notes.append(
                f"{modality.name}: not removed ({modality.kind} inputs have "
                "no missing value in these models)"
            )
            continue
        if not all_inputs - set(modality.inputs):
            notes.append(
                f"{modality.name}: not removed (the model's only input)"
            )
            continue
        metrics = evaluate(
            {name: make_corruption(REMOVED, 1.0) for name in modality.inputs}
        )
        rows.append(row(REMOVED, 1.0, metrics))
        entry["removed"] = True
        if REMOVED not in described:
            described.append(REMOVED)
        log(f"{modality.name} removed: {metric} {metrics[metric]:.4f}")
    described.sort(key=lambda name: name == REMOVED)  # removal last
    notes = [f"{name}: {DESCRIPTIONS[name]}" for name in described] + notes
    return {
        "metric": metric,
        "clean_value": clean[metric],
        "clean": clean,
        "modalities": summary,
        "rows": rows,
        "notes": notes,
    }


def _inputs_and_specs(modality):
    specs = modality.specs or (None,) * len(modality.inputs)
    return zip(modality.inputs, specs)


def _label(level):
    return f"{level:g}"


def format_table(report):
    """The text table of a report: one row per modality × corruption, one
    column per level (`removed` under level 1), values with 4 decimals,
    then the notes."""
    levels = list(report["levels"])
    if any(r["corruption"] == REMOVED for r in report["rows"]):
        levels = sorted({*levels, 1.0})
    cells = {}
    order = []
    for r in report["rows"]:
        key = (r["modality"], r["kind"], r["corruption"])
        if key not in cells:
            cells[key] = {}
            order.append(key)
        cells[key][float(r["level"])] = f"{r['value']:.4f}"
    header = ["modality", "kind", "corruption", *map(_label, levels)]
    lines = [
        [*key, *(cells[key].get(level, "") for level in levels)]
        for key in order
    ]
    widths = [
        max(len(line[i]) for line in [header, *lines])
        for i in range(len(header))
    ]

    def format_line(line):
        left = [f"{c:<{w}}" for c, w in zip(line[:3], widths[:3])]
        right = [f"{c:>{w}}" for c, w in zip(line[3:], widths[3:])]
        return "  ".join(left + right).rstrip()

    title = (
        f"{report['model']} on {report['dataset']}: {report['split']} "
        f"{report['metric']} with one modality corrupted (clean "
        f"{report['clean_value']:.4f}, seed {report['seed']})"
    )
    out = [title, "", format_line(header)]
    out += [format_line(line) for line in lines]
    if report["notes"]:
        out += ["", *(f"- {note}" for note in report["notes"])]
    return "\n".join(out)


def plot_report(report, path):
    """Writes the report's plot to `path` (PNG, written atomically): one
    panel per corrupted modality, the metric against the level with one
    line per corruption, the clean value dotted and the removal a
    marker at level 1."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = []
    for r in report["rows"]:
        if r["modality"] not in panels:
            panels.append(r["modality"])
    count = max(1, len(panels))
    columns = min(3, count)
    rows = -(-count // columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    metric = report["metric"]
    for ax, modality in zip(axes, panels):
        own = [r for r in report["rows"] if r["modality"] == modality]
        curves = {}
        for r in own:
            if r["corruption"] != REMOVED:
                curves.setdefault(r["corruption"], []).append(
                    (r["level"], r["value"])
                )
        for corruption, points in curves.items():
            points.sort()
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                label=corruption,
            )
        ax.axhline(
            report["clean_value"], linestyle=":", color="gray", label="clean"
        )
        for r in own:
            if r["corruption"] == REMOVED:
                ax.plot(
                    [1.0],
                    [r["value"]],
                    linestyle="none",
                    marker="X",
                    markersize=9,
                    color="black",
                    label=REMOVED,
                )
        ax.set_title(f"{modality} ({own[0]['kind']})")
        ax.set_xlabel("level")
        ax.set_ylabel(metric)
        ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(
        f"{report['model']} on {report['dataset']}: {report['split']} "
        f"{metric} under corruption"
    )
    tmp = f"{path}.tmp-{os.getpid()}"
    figure.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)


def _write_atomic(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
