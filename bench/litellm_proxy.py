"""The LiteLLM proxy as a comparator, in its own virtual environment (installed only on request).

``custom_openai/`` sends LiteLLM's translation of ``POST /v1/responses`` to a Chat Completions
upstream, the same job the shim does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["VENV", "ensure_litellm", "litellm_command", "litellm_version"]

VENV = Path.home() / ".cache" / "shim" / "bench-litellm"


def ensure_litellm() -> None:
    if (VENV / "bin" / "litellm").exists():
        return
    print(f"bench: installing LiteLLM into {VENV} (once)", flush=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)


def litellm_version() -> str:
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def litellm_command(upstream_url: str, port: int, data_dir: Path) -> tuple[list[str], dict[str, str]]:
    config = data_dir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: fake\n"
        "    litellm_params:\n"
        "      model: custom_openai/fake\n"
        f"      api_base: {upstream_url}\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
    )
    cmd = [str(VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    # No network at start-up (model price map), no per-request logging, and no client keys, as the
    # shim under test has none either (loopback only).
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    return cmd, env
