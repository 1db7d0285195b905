"""Orchard as a local model server: an OpenAI-compatible API over the library's models and the embedder.

``app`` has the routes, ``owners`` the one-thread-per-model ownership and idle unloading, ``jobs`` a
request's work on a model, ``protocol`` the wire format, ``errors`` OpenAI's error shape, ``launch`` the
loopback rule and uvicorn. Heavy imports (starlette, uvicorn, llama.cpp) happen only when a server starts.
"""

from macapp.core.settings import DEFAULT_PORT as DEFAULT_PORT  # the setting's default lives with the settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_IDLE_UNLOAD_S = 600.0  # a model nobody asked for in 10 minutes gives its memory back
