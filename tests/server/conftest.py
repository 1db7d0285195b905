"""A real Orchard server on loopback (uvicorn in a thread, port 0) over tiny generated GGUF models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf
from macapp.core.server.launch import RunningServer, ServerOptions, start_server
from macapp.core.settings import Settings

SPECS = {
    "tiny": TinySpec(name="tiny"),  # thousands of tokens/s: most tests
    "quiet": TinySpec(name="quiet", favour_token=4),  # <|im_end|> wins every step: every answer is empty
    "slow": TinySpec(name="slow", n_embd=512, n_layer=6, n_head=8, n_head_kv=8, n_ff=1024, ctx=4096, qtype="f16"),
}


@dataclass
class Served:
    server: RunningServer
    models: dict[str, str]  # SPECS name -> the id /v1/models lists

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(autouse=True)
def no_shared_index(monkeypatch):
    monkeypatch.delenv("MACAPP_CHROMA_URL", raising=False)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served-models")
    return {name: write_tiny_gguf(root / f"{name}.gguf", TinySpec(**vars(spec))) for name, spec in SPECS.items()}


@pytest.fixture
def library(model_files, isolated_home) -> dict[str, str]:
    """The tiny models in this test's library; returns their ids (a file's name without .gguf)."""
    Settings(model_files=[str(p) for p in model_files.values()], include_lm_studio=False).save()
    return {name: path.stem for name, path in model_files.items()}


def openai_client(url: str, api_key: str = "unused", **options):
    import openai

    return openai.OpenAI(base_url=url, api_key=api_key, max_retries=0, timeout=options.pop("timeout", 60), **options)


@pytest.fixture
def served(library):
    """A server on a free loopback port, 512-token contexts, no idle unloading."""
    with start_server(ServerOptions(port=0, n_ctx=512, idle_unload_s=0)) as server:
        yield Served(server, library)
