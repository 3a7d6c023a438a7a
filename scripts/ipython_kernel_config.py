# Copied by the Makefile into the venv's etc/ipython/, where every IPython
# kernel started from the venv reads it (IPython's ENV_CONFIG_DIRS).
#
# ipykernel 7 logs "Kernel is running over TCP without encryption ..." when it
# starts on TCP without CurveZMQ keys, which is how jupyter-book's executor
# (nbclient) and nbval start every notebook's kernel: `make book` printed it
# once per notebook. The kernels listen on localhost only. This drops that
# one message; every other kernel warning is still logged.
import logging


class _DropUnencryptedTcpWarning(logging.Filter):
    def filter(self, record):
        return "running over TCP without encryption" not in record.getMessage()


logging.getLogger("IPKernelApp").addFilter(_DropUnencryptedTcpWarning())
