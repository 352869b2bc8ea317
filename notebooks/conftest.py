"""The notebooks are tests: nbval runs each one in a fresh kernel and compares every cell's output
with the one stored in the notebook, after the sanitizers of ``sanitize.cfg`` (timings, ids, sizes).

Only this folder's notebooks are collected this way (no global ``--nbval``), so
``python -m pytest`` runs them with the rest of the suite and ``python -m pytest tests`` does not.
The kernels print progress as text (``JUPYTER_SANDBOX_PROGRESS=text``), since nbval cannot
show widgets; the stored outputs come from the same mode.  To refresh them after a deliberate
change in what users see::

    JUPYTER_SANDBOX_PROGRESS=text jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest

SANITIZE = pathlib.Path(__file__).with_name("sanitize.cfg")


def pytest_configure(config: pytest.Config) -> None:
    """Use this folder's sanitizers unless others were given on the command line."""
    if not config.option.nbval_sanitize_with:
        config.option.nbval_sanitize_with = str(SANITIZE)


def pytest_collect_file(file_path: pathlib.Path, parent: Any) -> Any:
    """Collect this folder's notebooks with nbval (unless ``--nbval`` already does it everywhere)."""
    options = parent.config.option
    if file_path.suffix == ".ipynb" and not (options.nbval or options.nbval_lax):
        from nbval.plugin import IPyNbFile

        return IPyNbFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before nbval starts a notebook's kernel: plain-text progress, which nbval can compare."""
    os.environ["JUPYTER_SANDBOX_PROGRESS"] = "text"
