import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _scratch_cwd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """
    Run in a scratch directory: trial's C{mktemp} and Buildbot's test
    masters write relative to the working directory, which is the checkout.
    """
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(cwd)
