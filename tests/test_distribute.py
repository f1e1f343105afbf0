"""`mmzoo train --distribute` (`mmzoo.distribute`): tf.distribute strategies
on the TensorFlow backend, Keras's distribution API on JAX, and the clear
errors for what Keras 3 cannot do. Device setup happens before TensorFlow
or JAX starts, so each training runs in a process of its own."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mmzoo import cli, distribute
from mmzoo.data import ctr
from mmzoo.registry import get_task
from mmzoo.tasks.ctr import CTRPrepared
from mmzoo.training import load_run, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A hang (a worker waiting on a collective) fails the test instead.
TIMEOUT = 240


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p
    )
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return {**env, **extra}


def _python(script, *args, **env):
    """Runs `script` in a fresh Python; returns its last stdout line as
    JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


MIRRORED = """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from mmzoo.training import train

    out = {}
    for kind in (None, "mirrored"):
        result = train(
            "deepfm", variant="tiny", epochs=2, steps_per_epoch=10,
            export_dir=None, run_dir=f"{sys.argv[1]}/{kind}",
            deterministic=True, verbose=0, distribute=kind,
        )
        strategy = result["keras_model"].distribute_strategy
        out[str(kind)] = {
            **result["metrics"]["test"],
            "replicas": strategy.num_replicas_in_sync,
        }
    print(json.dumps(out))
"""


def test_mirrored_on_two_devices_matches_one_device(tmp_path):
    out = _python(MIRRORED, tmp_path)
    one, two = out["None"], out["mirrored"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    # The same global batches: the same steps, up to reduction order.
    assert abs(one["auc"] - two["auc"]) < 0.01, out
    assert abs(one["loss"] - two["loss"]) < 0.02 * one["loss"], out
    # The loss of a `[B]` output is scaled per replica (not doubled).
    assert abs(two["loss"] - two["logloss"]) < 1e-5, out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_criteo_files(folder, sizes, seed=0):
    """Criteo-shaped files of `sizes` lines (labels follow C1)."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for index, size in enumerate(sizes):
        lines = []
        for _ in range(size):
            numbers = rng.integers(-1, 50, 13)
            categories = rng.integers(0, 20, 26)
            label = int(categories[0] < 8) ^ int(rng.random() < 0.2)
            lines.append(
                "\t".join(
                    [str(label)]
                    + [str(n) if n >= 0 else "" for n in numbers]
                    + [f"{c:08x}" for c in categories]
                )
            )
        (folder / f"day_{index}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_multi_worker_chief_writes_the_run_and_the_export(tmp_path):
    # Criteo files of unequal sizes, read by both workers: tf.data's
    # default sharding by file kept half of each worker's training rows.
    data_dir = _write_criteo_files(tmp_path / "criteo", (120, 80))
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    run_dir, export_dir = tmp_path / "run", tmp_path / "export"
    procs = []
    for index in range(2):
        tmp = tmp_path / f"tmp{index}"  # the worker's own temporary folder
        tmp.mkdir()
        tf_config = {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mmzoo.cli", "train", "deepfm"]
                + ["--dataset", "criteo", "--data-dir", str(data_dir)]
                + ["--variant", "tiny", "--epochs", "2", "--batch-size", "16"]
                + ["--distribute", "multi-worker"]
                + ["--logdir", str(tmp_path / "logs")]
                + ["--export-dir", str(export_dir)]
                + ["--run-dir", str(run_dir), "--no-verify"],
                cwd=tmp_path,
                env=_env(TF_CONFIG=json.dumps(tf_config), TMPDIR=str(tmp)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [proc.communicate(timeout=TIMEOUT) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-4000:]
    chief, worker = (json.loads(out.splitlines()[-1]) for out, _ in outputs)
    assert chief["run_dir"] == str(run_dir)
    assert chief["export"] == str(export_dir / "deepfm" / "1")
    assert (worker["run_dir"], worker["export"]) == (None, None)
    # Every worker evaluates (the metrics are reduced over both), every
    # row once: the metrics are those of the model on the whole splits.
    assert chief["metrics"] == worker["metrics"]
    name, model, config, preprocessor, _ = load_run(str(run_dir))
    task = get_task(name)
    task.compile(model, config)
    data = ctr.read_criteo(str(data_dir), seed=0)
    # Every epoch, each worker took one device's steps over all the train
    # rows in global batches of 16 ("10/10 - 3s - ..." per epoch).
    steps = -(-sum(1 for _ in data.splits["train"]) // 16)
    for out, _ in outputs:
        epochs = re.findall(r"^(\d+)/(\d+) - ", out, re.M)
        assert epochs == [(str(steps), str(steps))] * 2, out[-2000:]
    prepared = CTRPrepared(config, preprocessor, data.splits, None, data)
    for split in ("val", "test"):
        whole = task.evaluate(model, prepared, split, 16)
        assert chief["metrics"][split] == pytest.approx(whole, rel=1e-5)
    # And the same model as one device trains: the same global batches,
    # every train row once an epoch.
    one = train(
        "deepfm", dataset="criteo", data_dir=str(data_dir), variant="tiny",
        epochs=2, batch_size=16, export_dir=None, verbose=0,
        run_dir=str(tmp_path / "one-device"),
    )  # fmt: skip
    for split in ("val", "test"):
        assert chief["metrics"][split] == pytest.approx(
            one["metrics"][split], rel=1e-4
        ), (chief["metrics"], one["metrics"])
    assert os.listdir(export_dir / "deepfm") == ["1"]
    files = sorted(
        os.path.relpath(os.path.join(d, f), run_dir)
        for d, _, names in os.walk(run_dir)
        for f in names
    )
    for name in ("run.json", "model.keras", "metrics.json", "train.json"):
        assert name in files
    assert not any(".tmp" in f for f in files), files
    # TensorBoard files carry their writer's process id: the chief's.
    writers = {f.split(".")[-3] for f in files if "tfevents" in f}
    assert writers == {str(procs[0].pid)}, files
    # The worker's temporary folder is gone.
    assert os.listdir(tmp_path / "tmp1") == []


def test_cli_kinds_are_the_module_kinds():
    assert set(cli.DISTRIBUTE_KINDS) == set(distribute.KINDS) | set(
        distribute.UNSUPPORTED
    )


def test_parameter_server_names_the_working_routes(capsys):
    code = cli.main(
        ["train", "deepfm", "--variant", "tiny"]
        + ["--distribute", "parameter-server"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "ParameterServerStrategy" in err
    assert "--distribute multi-worker" in err
    assert "model-parallel" in err


def test_jax_kinds_need_the_jax_backend():
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        distribute.check_kind("data-parallel")
    with pytest.raises(ValueError, match="unknown kind 'mirror'"):
        distribute.check_kind("mirror")
    assert distribute.check_kind("none") is None


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "TF_CONFIG environment variable, which is not set"),
        ("{cluster", "is not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "has no 'cluster'"),
        (
            '{"cluster": {"worker": ["h:1"]}, '
            '"task": {"type": "worker", "index": 1}}',
            "task worker:1 is not in its cluster",
        ),
        (
            '{"cluster": {"worker": ["h:1"]}, '
            '"task": {"type": "evaluator", "index": 0}}',
            "task evaluator:0 is not in its cluster",
        ),
        (
            '{"cluster": {"worker": ["h:1"], "ps": ["h:2"]}, '
            '"task": {"type": "worker", "index": 0}}',
            "'ps' is parameter-server training",
        ),
        (
            '{"cluster": {"worker": ["h1"]}, '
            '"task": {"type": "worker", "index": 0}}',
            "list of 'host:port' strings",
        ),
    ],
)
def test_bad_tf_config_is_named(tf_config, message):
    with pytest.raises(ValueError, match="TF_CONFIG") as error:
        distribute.parse_tf_config(tf_config)
    assert message in str(error.value)
    assert "expected JSON such as" in str(error.value)


def test_chief_is_the_chief_task_or_worker_zero():
    assert distribute.is_chief({"worker": ["a:1", "b:1"]}, "worker", 0)
    assert not distribute.is_chief({"worker": ["a:1", "b:1"]}, "worker", 1)
    cluster = {"chief": ["a:1"], "worker": ["b:1"]}
    assert distribute.is_chief(cluster, "chief", 0)
    assert not distribute.is_chief(cluster, "worker", 0)


TPU = """
    import json
    from mmzoo.training import train

    try:
        train("deepfm", variant="tiny", export_dir=None, distribute="tpu")
    except ValueError as error:
        print(json.dumps({"error": str(error)}))
"""


def test_tpu_without_a_tpu_says_so(tmp_path):
    out = _python(TPU, TPU_NAME="")
    assert out["error"].startswith("--distribute tpu: no TPU found"), out
    assert "TPU_NAME" in out["error"]


JAX = """
    import json, sys
    import keras, numpy as np
    from mmzoo import registry
    from mmzoo.distribute import jax_distribution
    from mmzoo.training import train

    directory = sys.argv[1]
    out = {"devices": len(keras.distribution.list_devices())}
    result = train(
        "deepfm", variant="tiny", epochs=1, steps_per_epoch=2,
        export_dir=None, run_dir=f"{directory}/run", verbose=0,
        distribute="data-parallel",
    )
    out["data_parallel"] = result["metrics"]["test"]
    out["mesh"] = list(keras.distribution.distribution().device_mesh.shape)
    import tensorflow as tf
    from mmzoo.distribute import Distribution

    errors = []
    for size, batch in ((65, 64), (64, 63), (66, 64)):
        try:
            Distribution("data-parallel").check_batches(
                {"val": tf.data.Dataset.range(size)}, batch
            )
        except ValueError as error:
            errors.append(str(error))
        else:
            errors.append(None)
    out["uneven"] = errors
    prepared = result["prepared"]
    task = registry.get_task("deepfm")
    x, y = next(iter(task.pipeline(prepared, "train", 64, training=True)))
    x = {k: np.asarray(v) for k, v in x.items()}
    y = np.asarray(y)
    for kind in (None, "model-parallel"):
        distribution = kind and jax_distribution(kind, min_rows=16)
        keras.distribution.set_distribution(distribution)
        keras.utils.set_random_seed(0)
        model = registry.build("deepfm", config=prepared.config)
        task.compile(model, prepared.config)
        before = np.asarray(model.predict_on_batch(x))
        loss = model.train_on_batch(x, y, return_dict=True)["loss"]
        out[str(kind)] = {
            "predictions": before.tolist(),
            "loss": float(loss),
            "specs": {
                v.path: str(getattr(v.value.sharding, "spec", None))
                for v in model.weights
            },
        }
    out["sharded"] = distribution.sharded
    print(json.dumps(out))
"""


def test_jax_data_parallel_and_sharded_embedding_tables(tmp_path):
    out = _python(
        JAX,
        tmp_path,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2 "
        "--xla_backend_optimization_level=0",
    )
    assert out["devices"] == 2 and out["mesh"] == [2]
    # A batch that does not split over the 2 devices is refused up front.
    last, odd, even = out["uneven"]
    assert "a batch of 1 examples (val split: 65 examples" in last
    assert "a batch of 63 examples" in odd
    assert even is None
    assert 0 < out["data_parallel"]["loss"] < 1
    one, sharded = out["None"], out["model-parallel"]
    specs = sharded["specs"]
    # Tables of 16+ rows split by rows over the `model` axis; small ones
    # (the numeric embeddings: 2 rows) and dense kernels are replicated.
    assert out["sharded"] and all(
        specs[path] == "P('model', None)" for path in out["sharded"]
    )
    assert "emb_categorical/embeddings" in out["sharded"]
    assert specs["emb_numeric/value_embedding"] == "P(None, None)"
    assert specs["deep_dense_0/kernel"] == "P(None, None)"
    pairs = zip(one["predictions"], sharded["predictions"])
    assert max(abs(a - b) for a, b in pairs) < 1e-5
    assert abs(one["loss"] - sharded["loss"]) < 1e-5
