"""TensorFlow may be imported only where data pipelines and export live."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mmzoo"
# Backend-agnostic code: keras.ops only, runs on TF, JAX and PyTorch.
AGNOSTIC = ("layers", "encoders", "models", "metrics", "heads")
AGNOSTIC_FILES = (
    "registry.py",
    "__init__.py",
    "training.py",
    "main_job.py",
    "specs.py",
    "training_config.py",
)


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module


def _checked_files():
    for sub in AGNOSTIC:
        yield from sorted((PACKAGE / sub).rglob("*.py"))
    for name in AGNOSTIC_FILES:
        yield PACKAGE / name


def test_no_tensorflow_in_backend_agnostic_code():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in _checked_files()
        for line, module in _imports(path)
        if module.split(".")[0] in ("tensorflow", "tf_keras", "tensorflow_text")
        or module.startswith("keras.src")
    ]
    assert not offenders, "\n".join(offenders)


def test_no_retired_packages_anywhere():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, module in _imports(path)
        if module.split(".")[0] in ("tensorflow_addons", "keras_cv")
    ]
    assert not offenders, "\n".join(offenders)


def test_checked_files_exist():
    files = list(_checked_files())
    assert any(p.name == "deepfm.py" for p in files)
    assert all(p.exists() for p in files)
