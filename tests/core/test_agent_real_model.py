"""The agent on the real small model: SmolLM2-135M-Instruct writes schema-valid calls under the grammar and the
loop runs them (its template has no tool format, so the generic one applies, constrained by llama.cpp)."""

from __future__ import annotations

import pytest

from macapp.core.agent.builtin import builtin_toolbox
from macapp.core.agent.guard import Grants
from macapp.core.agent.loop import AgentLimits, ToolStarted, run_agent
from macapp.core.engines.base import PRESETS
from macapp.core.engines.constrained import tool_format_for
from macapp.core.engines.llama_engine import LlamaCppEngine
from macapp.core.engines.tool_calls import call_problems
from macapp.core.models.estimate import RuntimeSettings
from macapp.core.progress import drain

pytestmark = pytest.mark.real_model
TASK = [{"role": "user", "content": "Read the file notes.txt and tell me the launch code."}]


@pytest.fixture(scope="module")
def engine(real_model):
    eng = LlamaCppEngine(real_model, RuntimeSettings(n_ctx=2048))
    drain(eng.load())
    yield eng
    eng.unload()


@pytest.fixture
def toolbox(tmp_path):
    (tmp_path / "notes.txt").write_text("The launch code is 4217.\n")
    return builtin_toolbox(Grants(tools=("read_file", "list_folder"), folders=(str(tmp_path),)))


def test_the_real_model_calls_a_tool_under_the_grammar_and_the_loop_runs_it(engine, toolbox):
    assert engine.capabilities.grammar and tool_format_for(engine).name == "generic"
    sampling = PRESETS["deterministic"].with_changes(max_tokens=96)
    events, result = drain(
        run_agent(engine, TASK, toolbox, sampling=sampling, limits=AgentLimits(max_steps=1), first_call_required=True)
    )
    first = result.steps[0]
    assert first.call.name in toolbox and call_problems(first.call, toolbox.specs) == []
    assert any(isinstance(e, ToolStarted) and e.call.id == first.call.id for e in events)  # it ran
    assert (first.call.name, first.call.arguments, first.status) == ("read_file", {"path": "notes.txt"}, "ok")
    assert "4217" in first.result
    assert any(m["role"] == "tool" and "4217" in m["content"] for m in result.messages)  # the model was shown it


@pytest.mark.parametrize("seed", [1])
def test_every_call_the_real_model_writes_is_schema_valid(engine, toolbox, seed):
    sampling = PRESETS["balanced"].with_changes(max_tokens=96, seed=seed)
    _, result = drain(
        run_agent(engine, TASK, toolbox, sampling=sampling, limits=AgentLimits(max_steps=1), first_call_required=True)
    )
    assert result.steps, "the first round had to call a tool"
    assert [
        s.status for s in result.steps if s.status in ("invalid", "refused") and "outside the folders" not in s.result
    ] == []  # only a path the guard refused, never a bad call
    assert all(call_problems(s.call, toolbox.specs) == [] for s in result.steps)
