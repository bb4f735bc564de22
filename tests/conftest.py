import os
import sys
import threading
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


# The run's exit status, for pytest_unconfigure.
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_unconfigure(config: pytest.Config) -> None:
    """
    End the run even if a master outlived its test: one whose test timed
    out keeps Buildbot's database threads, which are not daemons, and the
    interpreter would wait for them for ever after reporting.
    """
    left = [
        thread.name
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
    ]
    if left:
        sys.stderr.write(f"threads left running: {', '.join(left)}; exiting without them\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(config.stash.get(_EXIT_STATUS, 1))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)
