"""``python -m fmnist.ui.server [streamlit run's options]``: the app's web server, as
``streamlit run app.py``, with the first page's imports done before it opens (`make run`).

Streamlit imports a page's modules when the first visitor asks for it: a just-started
server's first page paid about 0.45 s for numpy, this package's page helpers and
Streamlit's table of emoji (which checks the pages' icons) before it drew anything, and
Explore's first load took 2.1-2.2 s there against 1.6-1.8 s for every later visitor.
Imported here, before the server listens, they cost its start-up instead. TensorFlow is
not among them: the web server never imports it. The dataset is loaded then too.

It also turns off Nagle's algorithm on the server's connections (``serve_without_delay``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Sequence

# Of the folder it runs in, as `streamlit run app.py`, which reads .streamlit/config.toml there.
APP = "app.py"


def warm_up() -> None:
    """Import what the pages' first runs would: numpy, the page helpers and what they use
    (the settings' schema, Pillow's picture formats), the emoji table; and load the
    dataset from this machine's files."""
    import numpy.random  # noqa: F401
    import streamlit.emojis  # noqa: F401
    from PIL import Image

    from fmnist import charts, dataset_stats, imaging, schema, ui  # noqa: F401

    Image.preinit()  # the common formats' readers, which Pillow imports at its first picture
    # Outside a page, Streamlit warns once that the cache's spinner has no page to go to.
    context_log = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = context_log.level
    context_log.setLevel(logging.ERROR)
    try:
        ui.preload_dataset()  # 0.08-0.13 s of a just-started server's first Explore page
    finally:
        context_log.setLevel(level)


def serve_without_delay() -> None:
    """Make the server's connections send each response at once (TCP_NODELAY).

    Streamlit (1.67) creates its listening socket without naming TCP, so asyncio does not
    turn off Nagle's algorithm on the connections it accepts. Every response after the
    first on a kept-alive connection then waited for the browser's delayed ACK, about
    40 ms: the 61 files of Streamlit's own code that a first visit fetches took 2.6 s over
    one connection instead of 0.12-0.16 s, and Chromium (6 connections) reached Home's
    DOMContentLoaded about 0.1 s later.
    The option set on the listening socket is inherited by every accepted one.
    """
    from streamlit.web.server.starlette import starlette_server

    bind: Callable[[str, int, int], socket.socket] | None = getattr(
        starlette_server, "_bind_socket", None
    )
    if bind is None or getattr(bind, "without_delay", False):
        return  # another Streamlit, or already done

    def bind_without_delay(address: str, port: int, backlog: int) -> socket.socket:
        sock = bind(address, port, backlog)
        with contextlib.suppress(OSError):  # not a TCP socket: nothing to turn off
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    bind_without_delay.without_delay = True  # type: ignore[attr-defined]
    starlette_server._bind_socket = bind_without_delay


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the app until stopped; exits with Streamlit's own status."""
    warm_up()
    serve_without_delay()
    from streamlit.web import cli

    options = list(sys.argv[1:] if argv is None else argv)
    # Streamlit's own command line, in this process: the modules above stay imported.
    cli.main(["run", APP, *options], prog_name="streamlit")


if __name__ == "__main__":
    main()
