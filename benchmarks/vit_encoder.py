"""ViT-B/16 training speed on a GPU: mmzoo's captioner encoder vs timm.

Measures training images/s of one ViT-B/16 image classifier (224 pixels,
patch 16, 12 layers, width 768, MLP 3072, 12 heads, a 1000-class head,
AdamW, cross-entropy) on random images, in the same run:

(a) mmzoo: the image encoder of the `vit_lstm_captioner` `base` captioner,
    built by the captioner's own builder
    (`mmzoo.models.captioner_parts.caption_image_encoder` on
    `mmzoo.get_config("vit_lstm_captioner", "base")`: a `Rescaling` layer
    and keras-hub's `ViTBackbone`; its class token is the pooled vector),
    plus a float32 `Dense(1000)` head, under the `mixed_bfloat16` policy on
    the JAX backend, compiled with `jit_compile=True`. Timed with
    `model.fit` (as mmzoo's training does: state kept on the device
    between steps, callbacks dispatched asynchronously), fed by a plain
    Python generator that yields the same batch every step, either already
    on the device (the model's cost alone, as timm's rows) or as NumPy
    arrays that Keras copies to the device every step (one batch ahead, as
    in-memory data trains). `train_on_batch` is not used: it copies the
    whole state back into the variables and waits for the loss every step.
    One row per `--dropout` value: by default the captioner's configured
    dropout (0.5, keras-hub's ViT drops after the embeddings, the attention
    output and both MLP layers) and 0, which matches timm's default;
(b) timm's `vit_base_patch16_224` (random weights, `num_classes=1000`) on
    CUDA under bf16 autocast, AdamW, the same batch, run eagerly and under
    `torch.compile(model)` (rows say "not installed" without torch and
    timm);
(c) a reference row, NOT measured here: 3,263 img/s, timm + torch.compile
    on an H100 (the anchor this benchmark is read against).

Warm-up steps (tracing, XLA compilation, torch.compile) are excluded; the
clock starts when the last warm-up step's loss is ready and stops when the
last timed step's loss is ready (JAX) or after `torch.cuda.synchronize()`.

Each framework runs in its own subprocess (this script with `--worker`),
one after the other, so each has the GPU's memory to itself and neither
imports the other; the parent imports neither. No TensorFlow is needed:
mmzoo's encoder builder and config import none (checked with TensorFlow
blocked; keras-hub imports it only when installed), and the run header
(`_machine.run_header`) reads versions from package metadata.

Without a GPU (JAX sees no `gpu` device and `torch.cuda` is unavailable)
the script prints that it needs one and a JSON line with
`"skipped": "no GPU"`, and exits 0. `--allow-cpu` runs instead a smoke
configuration on the CPU (the same ViT-B shapes, batch 2, 1 warm-up and 2
timed steps unless given, both feeds; with `--quick` 1 timed step and the
device feed only; timm eager only), which only checks the code.

Usage (from the repository root):
    .venv/bin/python benchmarks/vit_encoder.py --allow-cpu --quick  # ~1 min
    # On a GPU machine with JAX (CUDA), and torch + timm for their rows;
    # Keras, keras-hub, namex and optree where missing (benchmarks/README.md).
    # Estimated 5 min (--quick: 3), mostly XLA and torch.compile compiling:
    KERAS_BACKEND=jax python3 benchmarks/vit_encoder.py
    KERAS_BACKEND=jax python3 benchmarks/vit_encoder.py --quick

Prints a table, then ONE JSON line with every figure.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback

from _machine import run_header

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL_NAME = "vit_lstm_captioner"
VARIANT = "base"
TIMM_MODEL = "vit_base_patch16_224"
NUM_CLASSES = 1000
REFERENCE = {
    "framework": "timm",
    "model": TIMM_MODEL,
    "mode": "torch.compile",
    "dtype": "bf16",
    "gpu": "NVIDIA H100",
    "images_per_s": 3263.0,
    "measured": False,
    "note": "anchor figure given with the task, not measured by this run",
}
# Optimizer settings of both frameworks (speed does not depend on them).
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.05
EPSILON = 1e-8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="ViT-B/16 training speed: mmzoo (Keras/JAX) vs timm."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer steps (GPU: 3 warm-up, 10 timed, one dropout value)",
    )
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="without a GPU, run a smoke configuration on the CPU",
    )
    parser.add_argument(
        "--batch-size", type=int, help="GPU: 128; CPU smoke run: 2"
    )
    parser.add_argument(
        "--warmup", type=int, help="untimed steps (GPU: 5, quick 3; CPU: 1)"
    )
    parser.add_argument(
        "--steps", type=int, help="timed steps (GPU: 30, quick 10; CPU: 2)"
    )
    parser.add_argument(
        "--dropout",
        type=float,
        nargs="+",
        help="mmzoo encoder dropout rates, one row (one compilation) each "
        "(default: the captioner's configured rate and 0; quick or CPU: "
        "the configured rate)",
    )
    parser.add_argument(
        "--skip-timm", action="store_true", help="measure mmzoo only"
    )
    parser.add_argument(
        "--skip-compile",
        action="store_true",
        help="timm eager only (no torch.compile)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--worker-timeout",
        type=int,
        default=420,
        help="seconds each framework's subprocess may run (420)",
    )
    parser.add_argument(
        "--worker", choices=("probe", "jax", "torch"), help=argparse.SUPPRESS
    )
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "warmup", "steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


# Versions in the run header (`_machine.run_header`, which imports nothing).
PACKAGES = (
    ("tensorflow", "tensorflow"),
    ("keras", "keras"),
    ("keras_hub", "keras-hub"),
    ("jax", "jax"),
    ("jaxlib", "jaxlib"),
    ("numpy", "numpy"),
    ("torch", "torch"),
    ("timm", "timm"),
)


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- workers --


def probe_worker():
    """What JAX and PyTorch see: {"jax": {...}, "torch": {...}}."""
    found = {}
    try:
        import jax

        device = jax.devices()[0]
        found["jax"] = {
            "backend": jax.default_backend(),
            "device": getattr(device, "device_kind", str(device)),
            "count": jax.device_count(),
        }
    except Exception as error:  # a broken install is reported, not fatal
        found["jax"] = {"backend": None, "error": repr(error)}
    if importlib.util.find_spec("torch") is None:
        found["torch"] = {"installed": False}
    else:
        try:
            import torch

            cuda = torch.cuda.is_available()
            found["torch"] = {
                "installed": True,
                "cuda": cuda,
                "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            }
        except Exception as error:
            found["torch"] = {"installed": True, "error": repr(error)}
    found["timm_installed"] = importlib.util.find_spec("timm") is not None
    try:  # the captioner's settings the rows use (Keras on JAX, no TF)
        config = mmzoo_config()
        found["config"] = {
            "image_size": config.image_size,
            "dropout": config.dropout,
        }
    except Exception as error:
        found["config"] = {"error": repr(error)}
    return found


def mmzoo_config(**overrides):
    """`mmzoo.get_config` of the `base` captioner (imports Keras on JAX)."""
    os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported
    if ROOT not in sys.path:  # mmzoo from this checkout if not installed
        sys.path.insert(1, ROOT)
    import mmzoo

    return mmzoo.get_config(MODEL_NAME, VARIANT, **overrides)


def jax_worker(settings):
    """mmzoo's encoder + head on JAX: one result per (dropout, feed)."""
    base = mmzoo_config()  # sets KERAS_BACKEND=jax first
    import jax
    import keras
    import numpy as np

    batch, warmup, steps = (settings[k] for k in ("batch", "warmup", "steps"))
    size = base.image_size
    rng = np.random.default_rng(settings["seed"])
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    images = images.astype(np.float32)  # raw 0..255 pixels, as served
    labels = rng.integers(0, NUM_CLASSES, (batch,), dtype=np.int32)
    on_device = (jax.device_put(images), jax.device_put(labels))
    results = []
    feeds = {"device": on_device, "numpy": (images, labels)}
    for dropout in settings["dropouts"]:
        keras.utils.set_random_seed(settings["seed"])
        try:
            model = vit_classifier(dropout, size)
            for feed in settings["feeds"]:
                result = timed_fit(model, feeds[feed], warmup, steps)
                result.update(
                    framework="mmzoo",
                    feed=feed,
                    dropout=dropout,
                    dtype=model.dtype_policy.name,
                    batch=batch,
                    parameters=int(model.count_params()),
                )
                log(
                    f"mmzoo dropout {dropout}, {feed} batch: "
                    f"{result['images_per_s']:,.1f} img/s"
                )
                results.append(result)
        except Exception as error:  # reported in its row; the rest runs
            traceback.print_exc()
            results.append(
                {"framework": "mmzoo", "dropout": dropout, "error": repr(error)}
            )
        model = None
        keras.backend.clear_session()
    device = jax.devices()[0]
    return {
        "results": results,
        "device": getattr(device, "device_kind", str(device)),
        "backend": jax.default_backend(),
        "encoder": {
            "builder": "mmzoo.models.captioner_parts.caption_image_encoder",
            "config": f"mmzoo.get_config({MODEL_NAME!r}, {VARIANT!r})",
            "image_encoder": base.image_encoder,
            "image_preset": base.image_preset,
            "image_size": size,
            "patch_size": base.patch_size,
            "vit_num_layers": base.vit_num_layers,
            "vit_num_heads": base.vit_num_heads,
            "vit_hidden_dim": base.vit_hidden_dim,
            "vit_mlp_dim": base.vit_mlp_dim,
            "configured_dropout": base.dropout,
        },
        "flash_attention_enabled": keras.config.is_flash_attention_enabled(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def vit_classifier(dropout, size):
    """The captioner's image encoder (its config at `dropout`) + a float32
    1000-class head on the class token, compiled with AdamW and XLA."""
    import keras

    from mmzoo.models.captioner_parts import caption_image_encoder

    # Here, not once: `keras.backend.clear_session()` resets the policy.
    keras.config.set_dtype_policy("mixed_bfloat16")
    encoder = caption_image_encoder(mmzoo_config(dropout=dropout))
    image = keras.Input((size, size, 3), dtype="float32", name="image")
    pooled, _ = encoder(image)  # class token, patch tokens
    logits = keras.layers.Dense(NUM_CLASSES, dtype="float32", name="logits")(
        pooled
    )
    model = keras.Model(image, logits, name="vit_classifier")
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=LEARNING_RATE,
            weight_decay=WEIGHT_DECAY,
            epsilon=EPSILON,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model


def timed_fit(model, data, warmup, steps):
    """`model.fit` over `warmup + steps` steps of the same batch `data`;
    times the last `steps` (from the last warm-up step's loss being ready
    to the last step's)."""
    import keras

    marks = {}

    class Timer(keras.callbacks.Callback):
        # Safe to run off the training thread: keeps steps dispatching
        # asynchronously (Keras then hands each step's logs over when
        # they are ready, on its callback thread).
        async_safe = True

        def on_train_batch_end(self, step, logs=None):
            if step == warmup - 1:
                float(logs["loss"])  # ready: warm-up done
                marks["start"] = time.perf_counter()
            elif step == warmup + steps - 1:
                marks["loss"] = float(logs["loss"])  # ready: all done
                marks["end"] = time.perf_counter()

    def batches():
        while True:
            yield data

    started = time.perf_counter()
    model.fit(
        batches(),
        epochs=1,
        steps_per_epoch=warmup + steps,
        callbacks=[Timer()],
        shuffle=False,
        verbose=0,
    )
    seconds = marks["end"] - marks["start"]
    return {
        "images_per_s": steps * len(data[1]) / seconds,
        "step_ms": seconds / steps * 1e3,
        "timed_seconds": seconds,
        "warmup_seconds": marks["start"] - started,
        "final_loss": marks["loss"],
    }


def torch_worker(settings):
    """timm's ViT-B/16, eager and under torch.compile."""
    import torch

    cuda = torch.cuda.is_available()
    torch.backends.cudnn.benchmark = True  # as timm's own benchmark
    results = []
    for mode in settings["torch_modes"]:
        try:
            result = timed_timm(mode, settings, "cuda" if cuda else "cpu")
            log(f"timm {mode}: {result['images_per_s']:,.1f} img/s")
        except Exception as error:  # reported in its row; the rest runs
            traceback.print_exc()
            result = {"framework": "timm", "mode": mode, "error": repr(error)}
        results.append(result)
        if cuda:
            torch.cuda.empty_cache()
    return {
        "results": results,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "optimizer": "torch.optim.AdamW (default foreach implementation)",
        "cudnn_benchmark": True,
    }


def timed_timm(mode, settings, device):
    """Trains a fresh timm model `warmup + steps` steps on one batch;
    times the last `steps`."""
    import timm
    import torch
    import torch.nn.functional as F

    batch, warmup, steps = (settings[k] for k in ("batch", "warmup", "steps"))
    size = settings["image_size"]
    torch.manual_seed(settings["seed"])
    model = timm.create_model(TIMM_MODEL, num_classes=NUM_CLASSES)
    model = model.to(device).train()
    forward = torch.compile(model) if mode == "torch.compile" else model
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        eps=EPSILON,
    )
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = F.cross_entropy(forward(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    started = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - start
    return {
        "framework": "timm",
        "mode": mode,
        "feed": "device",
        "dtype": "bf16 autocast",
        "batch": batch,
        "images_per_s": steps * batch / seconds,
        "step_ms": seconds / steps * 1e3,
        "timed_seconds": seconds,
        "warmup_seconds": start - started,
        "final_loss": float(loss.item()),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def run_worker(name, settings, timeout):
    """Runs this script as worker `name`; returns its JSON, or
    {"error": ...} when it fails (its stderr goes to ours)."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    if name == "probe":  # short-lived: don't reserve the GPU's memory
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--worker={name}",
        f"--settings={json.dumps(settings)}",
    ]
    try:
        proc = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"failed (exit {proc.returncode}); see stderr"}
    return json.loads(lines[-1])


# ----------------------------------------------------------------- parent --


def resolve_settings(args, smoke, config):
    """Sizes and steps of the run, `config` being the probe's reading of
    the captioner's config."""
    quick = args.quick
    dropouts = args.dropout
    if dropouts is None:
        dropouts = [config["dropout"]]
        if not (quick or smoke) and config["dropout"] != 0.0:
            dropouts.append(0.0)
    return {
        "batch": args.batch_size or (2 if smoke else 128),
        "warmup": args.warmup or (1 if smoke else 3 if quick else 5),
        "steps": args.steps
        or (1 if smoke and quick else 2 if smoke else 10 if quick else 30),
        "dropouts": dropouts,
        # A quick CPU smoke run skips the NumPy feed (the same code path).
        "feeds": ["device"] if smoke and quick else ["device", "numpy"],
        "seed": args.seed,
        "image_size": config["image_size"],
        "configured_dropout": config["dropout"],
        "torch_modes": ["eager"]
        + ([] if smoke or args.skip_compile else ["torch.compile"]),
        "cpu_smoke": smoke,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        settings = json.loads(args.settings or "{}")
        worker = {
            "probe": lambda: probe_worker(),
            "jax": lambda: jax_worker(settings),
            "torch": lambda: torch_worker(settings),
        }[args.worker]
        print(json.dumps(worker()), flush=True)
        return 0

    load_before = os.getloadavg()[0]
    probe = run_worker("probe", {}, args.worker_timeout)
    jax_gpu = probe.get("jax", {}).get("backend") == "gpu"
    torch_info = probe.get("torch", {})
    torch_gpu = bool(torch_info.get("cuda"))
    timm_ok = torch_info.get("installed", False) and probe.get(
        "timm_installed", False
    )
    if not (jax_gpu or torch_gpu) and not args.allow_cpu:
        print(
            "vit_encoder: needs a GPU (JAX sees no 'gpu' device and "
            "torch.cuda is unavailable); --allow-cpu runs a CPU smoke "
            "configuration instead."
        )
        summary = {
            **run_header("vit_encoder", load_before, PACKAGES),
            "skipped": "no GPU",
            "probe": probe,
            "reference": REFERENCE,
        }
        print(json.dumps(summary), flush=True)
        return 0

    smoke = not (jax_gpu or torch_gpu)
    config = probe.get("config", {})
    if "error" in config:
        # The jax worker fails alike and says why; timm still runs.
        config = {"image_size": 224, "dropout": 0.5}
    settings = resolve_settings(args, smoke, config)
    log(
        f"{'CPU smoke run' if smoke else 'GPU run'}: batch "
        f"{settings['batch']}, {settings['warmup']} warm-up + "
        f"{settings['steps']} timed steps"
    )

    if jax_gpu or smoke:
        mm = run_worker("jax", settings, args.worker_timeout)
    else:
        mm = {"error": "skipped: JAX sees no GPU"}
    if args.skip_timm:
        tm = {"error": "skipped (--skip-timm)"}
    elif not timm_ok:
        tm = {"error": "not installed (torch and timm)"}
    elif torch_gpu or smoke:
        tm = run_worker("torch", settings, args.worker_timeout)
    else:
        tm = {"error": "skipped: torch.cuda is unavailable"}

    summary = {
        **run_header("vit_encoder", load_before, PACKAGES),
        "settings": {
            **settings,
            "classes": NUM_CLASSES,
            "optimizer": {
                "name": "AdamW",
                "learning_rate": LEARNING_RATE,
                "weight_decay": WEIGHT_DECAY,
                "epsilon": EPSILON,
            },
            "timm_model": TIMM_MODEL,
        },
        "probe": probe,
        "mmzoo": mm,
        "timm": tm,
        "reference": REFERENCE,
    }
    print(table(summary))
    print(json.dumps(summary), flush=True)
    return 0


def table(summary):
    """Markdown table of the figures in `summary`."""
    s = summary["settings"]
    machine = summary["machine"]
    mm, tm = summary["mmzoo"], summary["timm"]
    gpu = mm.get("device") or tm.get("device") or "?"
    keras_label = f"mmzoo (Keras {machine['keras']}, JAX {machine['jax']})"
    timm_label = "timm"
    if machine["timm"]:
        timm_label += f" {machine['timm']} (PyTorch {machine['torch']})"
    feeds = {
        "device": "batch on the device",
        "numpy": "NumPy batch copied per step",
    }
    configured = s["configured_dropout"]
    rows = []
    for r in mm.get("results", []):
        mode = f"`fit`, XLA, dropout {r['dropout']:g}"
        if "error" in r:
            rows.append((keras_label, f"{mode}: {r['error']}", "", "", None))
            continue
        mode += f", {feeds[r['feed']]}"
        if r["dropout"] == configured:
            mode += " (as configured)"
        rows.append((keras_label, mode, r["dtype"], r["batch"], r))
    if "error" in mm:
        rows.append((keras_label, mm["error"], "", "", None))
    for r in tm.get("results", []):
        if "error" in r:
            rows.append(
                (timm_label, f"{r['mode']}: {r['error']}", "", "", None)
            )
            continue
        rows.append((timm_label, r["mode"], r["dtype"], r["batch"], r))
    if "error" in tm:
        rows.append((timm_label, tm["error"], "", "", None))
    if s["cpu_smoke"] and "results" in tm:
        rows.append((timm_label, "torch.compile: not run on CPU", "", "", None))
    ref = summary["reference"]
    title = (
        f"ViT-B/16 training, {s['image_size']} px, {NUM_CLASSES} classes, "
        f"AdamW, batch {s['batch']}, {s['warmup']} warm-up + {s['steps']} "
        f"timed steps, on {gpu}"
    )
    if s["cpu_smoke"]:
        title += " (CPU SMOKE RUN: checks the code; not a speed figure)"
    lines = [
        title,
        "",
        "| framework | mode | dtype | batch | img/s | step ms |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for framework, mode, dtype, batch, r in rows:
        # An error's text may hold newlines or pipes: one table cell.
        mode = " ".join(str(mode).split()).replace("|", "/")[:160]
        rate = f"{r['images_per_s']:,.1f}" if r else "n/a"
        ms = f"{r['step_ms']:.1f}" if r else "n/a"
        lines.append(
            f"| {framework} | {mode} | {dtype} | {batch} | {rate} | {ms} |"
        )
    lines.append(
        f"| timm, REFERENCE (not measured here) | {ref['mode']} on an "
        f"{ref['gpu'].removeprefix('NVIDIA ')} | {ref['dtype']} | n/a | "
        f"{ref['images_per_s']:,.0f} | n/a |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
