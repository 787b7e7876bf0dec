"""Where the API's base URL and key come from.

In this order: the argument; the environment (``SDKIT_BASE_URL`` / ``SDKIT_API_KEY``, then
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``); Colab's secrets (``google.colab.userdata``) when that
module can be imported; and, for the key only, a hidden prompt when running in a notebook kernel
that accepts input. The key is wrapped in :class:`~sdkit.secret.Secret` at once.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping

from sdkit.errors import ValidationError
from sdkit.secret import Secret

__all__ = ["BASE_URL_VARS", "KEY_VARS", "resolve_api_key", "resolve_base_url"]

BASE_URL_VARS = ("SDKIT_BASE_URL", "OPENAI_BASE_URL")
KEY_VARS = ("SDKIT_API_KEY", "OPENAI_API_KEY")


def _colab_secret(name: str) -> str | None:
    """A Colab secret, or None outside Colab, when it is missing or access was not granted."""
    if "google.colab" not in sys.modules:
        try:
            import google.colab  # noqa: F401
        except ImportError:
            return None
    try:
        from google.colab import userdata

        value = userdata.get(name)
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException, …
        return None
    return value if isinstance(value, str) and value.strip() else None


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _notebook_prompt() -> str | None:
    """Ask for the key with a hidden prompt, only in a notebook kernel that accepts input."""
    if not _in_notebook():
        return None

    try:
        value = getpass.getpass(f"API key (or set {KEY_VARS[0]}): ")
    except Exception:  # StdinNotImplementedError when the front end takes no input (nbval, nbconvert)
        return None
    return value.strip() or None


def resolve_base_url(base_url: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The base URL (``https://host`` or ``https://host/v1``), without a trailing slash."""
    env = os.environ if environ is None else environ
    value = base_url
    if value is None:
        value = next((env[v] for v in BASE_URL_VARS if env.get(v, "").strip()), None)
    if value is None:
        value = next((s for v in BASE_URL_VARS if (s := _colab_secret(v))), None)
    if value is None:
        raise ValidationError(
            "base_url", None, f"no API base URL: pass base_url=… or set {BASE_URL_VARS[0]} (or {BASE_URL_VARS[1]})"
        )
    if not isinstance(value, str) or not value.strip().lower().startswith(("http://", "https://")):
        raise ValidationError("base_url", value, "must start with http:// or https://")
    return value.strip().rstrip("/")


def resolve_api_key(
    api_key: Secret | str | None = None, *, environ: Mapping[str, str] | None = None, prompt: bool = True
) -> Secret | None:
    """The API key as a :class:`Secret`, or None when there is none (``api_key=""`` means: send none)."""
    if api_key is not None:
        key = Secret(api_key)
        return key if key.reveal().strip() else None
    env = os.environ if environ is None else environ
    value = next((env[v] for v in KEY_VARS if env.get(v, "").strip()), None)
    if value is None:
        value = next((s for v in KEY_VARS if (s := _colab_secret(v))), None)
    if value is None and prompt:
        value = _notebook_prompt()
    return Secret(value.strip()) if value else None
