"""nbval runs the experiment notebooks in smoke mode unless told otherwise.

The notebooks read the switch from the environment variable ``DM_MODE``
(``dm.runs.mode()``); kernels that nbval starts inherit this process's
environment. ``make test`` sets it explicitly; this default makes a bare
``pytest notebooks --nbval ...`` do the same instead of asking for a GPU.
"""

import os

os.environ.setdefault("DM_MODE", "smoke")
