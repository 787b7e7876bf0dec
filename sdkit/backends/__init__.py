"""Backends: the contract (:mod:`.base`), the registry (:mod:`.registry`) and the built-in kinds.

- :mod:`sdkit.backends.local`: diffusers pipelines on this machine (kind ``local``).
- :mod:`sdkit.backends.relay`: an OpenAI-style Stable Diffusion API (kinds ``chat`` and ``images``).
- :mod:`sdkit.backends.providers`: image APIs in their providers' own formats (kinds ``stability``, ``bfl``).

A new kind is a class with the four members of :class:`Backend`, registered with
:func:`register_backend` (or through the ``sdkit.backends`` entry-point group).
"""

from sdkit.backends.base import NO_CAPABILITIES, Backend, Capabilities, capabilities, identity
from sdkit.backends.registry import backend_kinds, create_backend, register_backend, unregister_backend

__all__ = [
    "NO_CAPABILITIES",
    "Backend",
    "Capabilities",
    "backend_kinds",
    "capabilities",
    "create_backend",
    "identity",
    "register_backend",
    "unregister_backend",
]
