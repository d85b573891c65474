import sys

__version__ = "0.1.0"

# httpx imports its optional command-line tool (``httpx._main``) whenever click, rich and pygments
# are installed (uvicorn and Litestar bring them): 4 MiB of every worker's memory for code the
# shim never runs. A ``None`` module entry makes that import fail, as if they were missing.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
