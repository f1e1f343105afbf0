import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_DATA = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data"
)


@pytest.fixture(scope="session")
def shared_data():
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip(f"shared data folder {path} not present")
    return path


def pytest_collection_modifyitems(config, items):
    """Keeps each test module on one pytest-xdist worker.

    CI runs `pytest -n 2 --dist loadgroup` (`.ci/run`): every test gets its
    module's name as its `xdist_group`, so module fixtures (a tiny model
    trained once, a prepared dataset) are built once, not once per worker.
    A module whose tests share nothing heavy sets `XDIST_SPREAD = True` and
    its tests are spread over the workers one by one; a test there that
    has its own `xdist_group` marker keeps it. Without xdist the marker is
    inert.
    """
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        module = getattr(item, "module", None)
        if module is not None and getattr(module, "XDIST_SPREAD", False):
            continue
        name = module.__name__ if module is not None else item.nodeid
        item.add_marker(pytest.mark.xdist_group(name))
