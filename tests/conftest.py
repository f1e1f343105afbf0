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
    """Runs the end-to-end files (`tests/*.py`: notebooks, contract, CLI)
    before the unit folders.

    Under pytest-xdist (`.ci/run`: two workers, one file per worker at a
    time) the few long files then start first and the many short ones fill
    the gaps, instead of one worker running the notebooks alone at the end.
    The order within each file is kept.
    """
    tests_dir = os.path.dirname(os.path.abspath(__file__))

    def end_to_end_first(item):
        return 0 if os.path.dirname(str(item.path)) == tests_dir else 1

    items.sort(key=end_to_end_first)  # stable
