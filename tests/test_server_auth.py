"""CI auth check: with unauthenticated access off, jupyter-server finds no handler of ours unguarded.

Jupyter server warns (``JupyterServerAuthWarning``) about every extension
handler method without ``@tornado.web.authenticated``, ``@ws_authenticated``
or ``@allow_unauthenticated``; this test fails on any such warning.
"""

from __future__ import annotations

import warnings
from typing import Any

from jupyter_server.utils import JupyterServerAuthWarning
from sandbox_test_support import server_config

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def test_no_handler_of_ours_skips_authentication(jp_configurable_serverapp: Any) -> None:
    config = server_config()
    config["ServerApp"]["allow_unauthenticated_access"] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JupyterServerAuthWarning)
        app = jp_configurable_serverapp(config=config)
    problems = [str(w.message) for w in caught if issubclass(w.category, JupyterServerAuthWarning)]
    assert problems == []
    assert "jupyter_sandbox_manager" in app.web_app.settings, "the extension did not load"
    assert app.web_app.settings["allow_unauthenticated_access"] is False
