"""The OpenAI-style API server (``sdkit serve``); :mod:`sdkit.server.app` maps its modules."""
