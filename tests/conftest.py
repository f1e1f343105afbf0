import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_DATA = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data"
)


@pytest.fixture(scope="session", autouse=True)
def _one_verification_process():
    """`mmzoo.export.verify` checks every export of this test process in one
    long-lived TensorFlow-only process instead of a fresh one per call
    (about 12 s each on 2 cores; a dozen calls in the suite)."""
    from mmzoo.export.verify import persistent_worker

    with persistent_worker():
        yield


@pytest.fixture(scope="session")
def shared_data():
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip(f"shared data folder {path} not present")
    return path


# Test files that take longest (seconds, measured in one CI run on 2 cores:
# `.ci/run --durations=0`), run first: `.ci/run` passes
# `--no-loadscope-reorder`, so pytest-xdist hands out files in this order,
# and the last file to start is a short one instead of a 6-minute one.
LONGEST_FIRST = (
    "tests/test_notebooks.py",  # 379 + 48 (av_monitor)
    "tests/test_contract.py",  # 218 + 35 (with the hostile requests)
    "tests/test_contract_jax.py",  # 158 + 15
    "tests/test_av_end_to_end.py",  # ~60 (prepare, train, serve)
    "tests/test_resume.py",  # ~60 (three CLI trainings, one SIGKILLed)
    "tests/test_distribute.py",  # ~70 (mirrored, two workers, JAX)
    "tests/test_mixed_precision.py",  # ~85 (every model in bf16)
    "tests/test_robustness.py",  # ~60 (two trainings, two reports)
    "tests/tasks/test_captioning.py",  # 153
    "tests/tasks/test_image_text_labels_task.py",  # 86
    "tests/test_presets_end_to_end.py",  # 77
    "tests/tasks/test_classification.py",  # 76
    "tests/models/test_fusion_captioners.py",  # ~60 (a glove CLI run)
    "tests/models/test_av_monitor.py",  # ~45
    "tests/tasks/test_retrieval.py",  # 39
    "tests/models/test_vit_lstm_captioner.py",  # 73
    "tests/models/test_multimodal.py",  # 60
    "tests/test_cli.py",  # 59
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = config.rootpath

    def key(item):
        path = item.path.relative_to(root).as_posix()
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the rest keep their order


def pytest_terminal_summary(terminalreporter):
    """Prints the request counts of `test_fuzz_every_signature` (they come
    from the workers as the reports' `user_properties`)."""
    rows = []
    for report in terminalreporter.stats.get("passed", []):
        for key, value in getattr(report, "user_properties", ()):
            if key != "fuzz":
                continue
            for model, signatures in value.items():
                for signature, counts in signatures.items():
                    rows.append((model, signature, counts))
    if not rows:
        return
    terminalreporter.section("fuzzed requests per signature")
    total = 0
    for model, signature, counts in sorted(rows):
        total += counts["tried"]
        terminalreporter.write_line(
            f"{model:<28} {signature:<18} tried {counts['tried']:>4}  "
            f"answered {counts['answered']:>4}  rejected "
            f"{counts['rejected']:>4}  crashed {counts['crashed']}"
        )
    terminalreporter.write_line(
        f"{total} requests to {len(rows)} signatures, 0 crashes"
    )
