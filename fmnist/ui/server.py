"""``python -m fmnist.ui.server [streamlit run's options]``: the app's web server, as
``streamlit run app.py``, with the first page's imports done before it opens (`make run`).

Streamlit imports a page's modules when the first visitor asks for it: a just-started
server's first page paid about 0.45 s for numpy, this package's page helpers and
Streamlit's table of emoji (which checks the pages' icons) before it drew anything, and
Explore's first load took 2.1-2.2 s there against 1.6-1.8 s for every later visitor.
Imported here, before the server listens, they cost its start-up instead. TensorFlow is
not among them: the web server never imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Of the folder it runs in, as `streamlit run app.py`, which reads .streamlit/config.toml there.
APP = "app.py"


def warm_up() -> None:
    """Import what the pages' first runs would: numpy, the page helpers and what they use
    (the settings' schema, Pillow's picture formats), the emoji table."""
    import numpy.random  # noqa: F401
    import streamlit.emojis  # noqa: F401
    from PIL import Image

    from fmnist import charts, dataset_stats, imaging, schema, ui  # noqa: F401

    Image.preinit()  # the common formats' readers, which Pillow imports at its first picture


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the app until stopped; exits with Streamlit's own status."""
    warm_up()
    from streamlit.web import cli

    options = list(sys.argv[1:] if argv is None else argv)
    # Streamlit's own command line, in this process: the modules above stay imported.
    cli.main(["run", APP, *options], prog_name="streamlit")


if __name__ == "__main__":
    main()
