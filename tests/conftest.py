import os
import warnings
from collections.abc import Iterator

import pytest

# Importing buildbot.test makes every warning an error; crossbar's
# autobahn brings passlib, which imports the deprecated crypt module when
# Buildbot's master imports autobahn.  Import that first, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import buildbot.master  # noqa: F401


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
