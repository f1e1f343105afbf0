"""Every notebook runs top to bottom, and is committed without outputs.

`test_notebook_executes` is parametrized over `notebooks/*.ipynb`, so a
notebook added later is executed too. It runs with `MMZOO_NOTEBOOK_SMOKE=1`
(notebooks read it to pick a tiny variant and a few steps) in a `python3`
kernel that is this interpreter: the kernel spec is written to a private
folder, so a user-level or system `python3` spec pointing at another Python
cannot be picked up.
"""

import json
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600


def _kernel_manager(tmp_path):
    """A `KernelManager` whose `python3` kernel runs `sys.executable`."""
    kernels = tmp_path / "kernels"
    spec_dir = kernels / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": "Python 3 (mmzoo tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


# Run first in every notebook: the namespace of the notebook before is
# emptied (`%reset`), so a notebook that forgets an import still fails;
# Keras's global state and open figures are cleared too. No name is left.
RESET = """
__import__("keras").backend.clear_session()
__import__("matplotlib.pyplot").pyplot.close("all")
get_ipython().run_line_magic("reset", "-f")
__import__("gc").collect()
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One kernel for the notebooks of this test process: importing
    TensorFlow, Keras and mmzoo (12-16 s on 2 cores) is paid once, not per
    notebook. Each notebook runs from an emptied namespace (`RESET`)."""
    python_path = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "MMZOO_NOTEBOOK_SMOKE": "1",
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # Import this checkout's mmzoo, as the tests do, even where it is
        # not installed in editable mode.
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), python_path] if python_path else [str(ROOT)]
        ),
    }
    km = _kernel_manager(tmp_path_factory.mktemp("kernel"))
    # Run where Jupyter would: in the notebooks' folder.
    km.start_kernel(env=env, cwd=str(NOTEBOOK_DIR))
    try:
        yield km
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, kernel):
    if not kernel.is_alive():  # a notebook before took it down
        kernel.restart_kernel(now=True)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(RESET))
    client = NotebookClient(
        notebook,
        km=kernel,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=180,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()


def _committed_notebooks():
    """Notebooks in git, plus new ones git would add (not ignored)."""
    try:
        listed = subprocess.run(
            [
                "git",
                "ls-files",
                "--cached",
                "--others",
                "--exclude-standard",
                "--",
                "notebooks/*.ipynb",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return NOTEBOOKS  # not a git checkout (e.g. an unpacked sdist)
    return sorted({ROOT / p for p in listed if (ROOT / p).is_file()})


def test_notebooks_are_committed_without_outputs():
    dirty = []
    for path in _committed_notebooks():
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            problems = [
                what
                for what, bad in (
                    ("outputs", cell.get("outputs")),
                    ("execution_count", cell.get("execution_count")),
                    ("execution timing", cell.metadata.get("execution")),
                )
                if bad
            ]
            if problems:
                dirty.append(
                    f"{path.relative_to(ROOT)} cell {index}: "
                    + ", ".join(problems)
                )
    assert not dirty, (
        "notebooks must be committed with outputs stripped (e.g. `jupyter "
        "nbconvert --clear-output --inplace NOTEBOOK`):\n" + "\n".join(dirty)
    )
