"""The `mmzoo` command: list, train, export, verify, robustness, main,
prepare-clips."""

import argparse
import ast
import json
import logging
import os
import sys

# `--distribute` values (`mmzoo.distribute`, kept here so that `--help`
# imports no Keras); parameter-server is accepted to explain why not.
DISTRIBUTE_KINDS = (
    "mirrored",
    "multi-worker",
    "tpu",
    "data-parallel",
    "model-parallel",
    "parameter-server",
)


def _parse_overrides(pairs):
    overrides = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value  # a bare string such as fusion=concat
    return overrides


def _cmd_list(args):
    from mmzoo import registry

    for name in registry.list_models():
        entry = registry.get_entry(name)
        print(
            f"{name}\t{entry.problem}\tvariants: "
            f"{', '.join(registry.list_variants(name))}\tdatasets: "
            f"{', '.join(entry.datasets)}"
        )
    return 0


def _cmd_train(args):
    from mmzoo.training import train

    result = train(
        args.model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        variant=args.variant,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        overrides=_parse_overrides(args.set),
        logdir=args.logdir,
        export_dir=args.export_dir or None,
        steps_per_epoch=args.steps_per_epoch,
        run_dir=args.run_dir,
        resume=args.resume,
        deterministic=args.deterministic,
        early_stopping=args.early_stopping,
        distribute=args.distribute,
        # A progress bar on a terminal; one line per epoch in a log file.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if result["export"] and not args.no_verify:
        from mmzoo.export.verify import verify

        report = verify(result["export"])
        print(report.table(), file=sys.stderr)
        if not report.ok:
            return 1
    summary = {
        k: result[k]
        for k in ("model", "dataset", "metrics", "export", "run_dir")
    }
    print(json.dumps(summary), flush=True)
    return 0


def _cmd_export(args):
    from mmzoo.export import export_model
    from mmzoo.registry import get_task
    from mmzoo.training import load_run

    name, model, config, preprocessor, examples = load_run(args.run_dir)
    path = export_model(
        model,
        get_task(name),
        config,
        preprocessor,
        args.export_dir,
        keep_versions=args.keep,
        examples=examples,
        tpu_function_alias=args.tpu_function_alias,
        gallery=args.gallery,
        top_k=args.top_k,
        warmup=not args.no_warmup,
    )
    print(json.dumps({"model": name, "export": path}))
    return 0


def _cmd_verify(args):
    from mmzoo.export.verify import verify_exports

    reports = verify_exports(args.dirs)
    print("\n\n".join(report.table() for report in reports))
    return 0 if all(report.ok for report in reports) else 1


def _cmd_robustness(args):
    from mmzoo.robustness import robustness_report

    robustness_report(
        args.run_dir,
        data_dir=args.data_dir,
        levels=args.levels,
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=True,
    )
    return 0


def _parse_levels(text):
    try:
        levels = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers in 0..1, got {text!r}"
        ) from None
    if not levels:
        raise argparse.ArgumentTypeError(f"no level in {text!r}")
    return levels


def _cmd_main(args):
    from mmzoo.main_job import run_main_job

    return run_main_job(
        export_dir=args.export_dir,
        logdir=args.logdir,
        seed=args.seed,
        models=args.models or None,
        jobs=args.jobs,
    )


def _cmd_prepare_clips(args):
    from mmzoo.data.prepare_clips import prepare_clips

    try:
        summary = prepare_clips(
            args.src,
            args.dst,
            fps=args.fps,
            max_frames=args.max_frames,
            sample_rate=args.sample_rate,
            size=args.size,
            labels=args.labels,
            skip_bad=args.skip_bad,
            overwrite=args.overwrite,
        )
    except ImportError as error:  # no imageio-ffmpeg (mmzoo[video])
        raise ValueError(str(error)) from error
    print(json.dumps(summary), flush=True)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mmzoo", description="Multimodal model zoo for Keras/TF Serving."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        help="keep TensorFlow's native start-up log lines (dropped by default)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser

    def with_common(*args, **kwargs):
        return add_parser(*args, parents=[common], **kwargs)

    sub.add_parser = with_common

    sub.add_parser("list", help="list registered models").set_defaults(
        func=_cmd_list
    )

    train = sub.add_parser("train", help="train, evaluate and export a model")
    train.add_argument("model")
    train.add_argument("--dataset", default="synthetic")
    train.add_argument("--data-dir", default=None)
    train.add_argument("--variant", default="base")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--steps-per-epoch", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="config override, e.g. --set embedding_dim=16 (repeatable)",
    )
    train.add_argument("--logdir", default="logs")
    train.add_argument(
        "--run-dir",
        default=None,
        metavar="DIR",
        help="the run folder (default: a new timestamped one under "
        "--logdir/MODEL)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the killed run in --run-dir from its last finished "
        "epoch (same arguments)",
    )
    train.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism: the same seed gives the same "
        "weights, resumed or not",
    )
    train.add_argument(
        "--early-stopping",
        type=int,
        default=0,
        metavar="N",
        help="stop after N epochs without a better validation loss and "
        "keep the best weights (default 0: off)",
    )
    train.add_argument(
        "--distribute",
        default=None,
        choices=("none", *DISTRIBUTE_KINDS),
        metavar="KIND",
        help="train on several devices or machines (default none). "
        "TensorFlow: mirrored (this machine's GPUs), multi-worker (the "
        "machines of the TF_CONFIG environment variable; only the chief "
        "writes the run folder and the export), tpu (TPU_NAME's TPU or this "
        "TPU VM's). JAX (KERAS_BACKEND=jax): data-parallel, model-parallel "
        "(large embedding tables split over the devices). --batch-size is "
        "the global batch, split over the replicas. parameter-server: not "
        "supported by Keras 3 (the error names the alternatives)",
    )
    train.add_argument(
        "--export-dir",
        default="export",
        help="export base folder; '' skips the export",
    )
    train.add_argument(
        "--no-verify",
        action="store_true",
        help="skip verifying the export in a fresh process",
    )
    train.set_defaults(func=_cmd_train)

    export = sub.add_parser(
        "export", help="re-export a trained run folder (logs/<model>/<run>)"
    )
    export.add_argument("run_dir")
    export.add_argument("--export-dir", default="export")
    export.add_argument(
        "--keep", type=int, default=None, help="keep only the newest N versions"
    )
    export.add_argument(
        "--no-warmup",
        action="store_true",
        help="write no TF Serving warmup records (mmzoo verify then warns "
        "instead of failing)",
    )
    export.add_argument(
        "--tpu-function-alias",
        default=None,
        metavar="ALIAS",
        help="also export the model's forward pass under this function "
        "alias (e.g. tpu_func) for the TPU inference converter",
    )
    export.add_argument(
        "--gallery",
        help="retrieval models: a folder of images or a text file of "
        "captions to embed into the export, served by the search_by_text "
        "and search_by_image signatures",
    )
    export.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="results per gallery query (default 10)",
    )
    export.set_defaults(func=_cmd_export)

    verify = sub.add_parser(
        "verify", help="check an export as TF Serving would load it"
    )
    verify.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="export version folders (one process checks them all)",
    )
    verify.set_defaults(func=_cmd_verify)

    robustness = sub.add_parser(
        "robustness",
        help="evaluate a trained run folder with one modality at a time "
        "corrupted at growing levels; writes robustness.json/.txt/.png "
        "into it and prints the table",
    )
    robustness.add_argument("run_dir")
    robustness.add_argument(
        "--data-dir",
        default=None,
        help="the dataset's folder, when it moved since training (default: "
        "the one the run recorded)",
    )
    robustness.add_argument(
        "--levels",
        type=_parse_levels,
        default=(0.0, 0.25, 0.5, 0.75, 1.0),
        metavar="L,L,...",
        help="corruption levels in 0..1, 0 = clean (default 0,0.25,0.5,0.75,1)",
    )
    robustness.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="evaluation batch size (default: the run's)",
    )
    robustness.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the corruptions' draws (default 0)",
    )
    robustness.set_defaults(func=_cmd_robustness)

    main_job = sub.add_parser(
        "main",
        help="train every model on synthetic data, export and verify it",
    )
    main_job.add_argument("--export-dir", default="export")
    main_job.add_argument("--logdir", default="logs")
    main_job.add_argument("--seed", type=int, default=0)
    main_job.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="models trained at once, each in its own process (default: "
        "one per CPU core, at most 4; 1 = one after the other)",
    )
    main_job.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="train only these registered models (default: all)",
    )
    main_job.set_defaults(func=_cmd_main)

    clips = sub.add_parser(
        "prepare-clips",
        help="turn a folder of videos into an av-clips dataset folder "
        "(JPEG frames and WAV audio with ffmpeg; needs mmzoo[video])",
    )
    clips.add_argument("src", metavar="SRC", help="folder of video files")
    clips.add_argument("dst", metavar="DST", help="av-clips folder to write")
    clips.add_argument(
        "--fps", type=float, default=2.0, help="frames per second (default 2)"
    )
    clips.add_argument(
        "--max-frames",
        type=int,
        default=64,
        help="at most this many frames per clip (default 64)",
    )
    clips.add_argument(
        "--sample-rate",
        type=int,
        default=16000,
        help="sample rate of the mono WAV files (default 16000)",
    )
    clips.add_argument(
        "--size",
        type=int,
        default=256,
        help="longer side of the frames at most (default 256; never upscaled)",
    )
    clips.add_argument(
        "--labels",
        metavar="FILE",
        default=None,
        help="CSV with header video,labels: a video's path relative to SRC "
        "and its |-separated labels (default: the top-level subfolder of "
        "SRC holding a video is its label)",
    )
    clips.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip videos ffmpeg cannot read, with a warning, instead of "
        "failing",
    )
    clips.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing DST/index.csv",
    )
    clips.set_defaults(func=_cmd_prepare_clips)
    return parser


class _LogFormat(logging.Formatter):
    """`mmzoo: what` for progress, `mmzoo: warning: what` and the like
    above it: the CLI's own message style."""

    def format(self, record):
        level = ""
        if record.levelno >= logging.WARNING:
            level = f"{record.levelname.lower()}: "
        return f"mmzoo: {level}{record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record comes, not as it was
    when the handler was made (pytest, notebooks and the native log
    filter replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _show_logs():
    """Shows mmzoo's log records of level INFO and up on stderr (progress
    of long steps, such as fitting vocabularies on a large file); once
    per process."""
    logger = logging.getLogger("mmzoo")
    if any(isinstance(h, _StderrHandler) for h in logger.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(_LogFormat())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv=None):
    args = build_parser().parse_args(argv)
    _show_logs()
    if args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return _run(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mmzoo._native_logs import filtered_stderr

    with filtered_stderr():
        return _run(args)


def _run(args):
    try:
        return args.func(args)
    except ValueError as error:
        print(f"mmzoo: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
