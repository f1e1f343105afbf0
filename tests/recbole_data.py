"""The real MovieLens-100k, as RecBole's PyPI wheel ships it.

MovieLens terms forbid redistribution, so the files are never part of this
repository: `movielens_100k_dir()` downloads the `recbole==1.2.1` wheel
(`pip download --no-deps`, nothing installed) into a cache folder outside
the repository and unpacks only `recbole/dataset_example/ml-100k/*`, in
RecBole's atomic-file layout (`ml-100k.inter`, `.item`, `.user`). Without
network access the calling test is skipped with the reason.

The cache folder is `$MMZOO_RECBOLE_CACHE`, else `/tmp/mmzoo-recbole`.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import pytest

RECBOLE = "recbole==1.2.1"
MEMBER_PREFIX = "recbole/dataset_example/ml-100k/"
FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


def cache_dir():
    """The folder the wheel and the unpacked data are kept in."""
    return os.environ.get("MMZOO_RECBOLE_CACHE", "/tmp/mmzoo-recbole")


def _complete(path):
    return all(os.path.isfile(os.path.join(path, name)) for name in FILES)


def _download_wheel(cache):
    wheels = glob.glob(os.path.join(cache, "recbole-1.2.1-*.whl"))
    if wheels:
        return wheels[0]
    staging = tempfile.mkdtemp(prefix=".download-", dir=cache)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
                "-d",
                staging,
                RECBOLE,
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = glob.glob(os.path.join(staging, "recbole-1.2.1-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(
                f"pip download --no-deps {RECBOLE} failed "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
            )
        target = os.path.join(cache, os.path.basename(wheels[0]))
        os.replace(wheels[0], target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(wheel, target):
    staging = tempfile.mkdtemp(prefix=".unpack-", dir=os.path.dirname(target))
    os.chmod(staging, 0o755)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in FILES:
                with open(os.path.join(staging, name), "wb") as f:
                    f.write(archive.read(MEMBER_PREFIX + name))
        try:
            os.rename(staging, target)  # atomic: a reader never sees half
        except OSError:
            if not _complete(target):  # lost a race to a complete copy?
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def movielens_100k_dir():
    """Returns the folder of RecBole's MovieLens-100k atomic files.

    Downloads and unpacks on first use; skips the calling test when the
    wheel cannot be downloaded (no network).
    """
    cache = cache_dir()
    target = os.path.join(cache, "ml-100k")
    if _complete(target):
        return target
    os.makedirs(cache, exist_ok=True)
    try:
        wheel = _download_wheel(cache)
        _unpack(wheel, target)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        pytest.skip(f"MovieLens-100k unavailable (needs PyPI): {error}")
    except (zipfile.BadZipFile, KeyError) as error:
        pytest.skip(f"MovieLens-100k: unusable {RECBOLE} wheel: {error}")
    return target
