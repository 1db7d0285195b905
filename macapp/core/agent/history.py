"""An agent run kept in the chat history: the task, the answer, and every tool step in between.

``run_in_chat`` adds the task as a user message and the answer as an assistant message that streams
while the agent works; each ``ToolStep`` is saved with that message as it happens (call, arguments,
approval, result, duration), so a crash keeps the steps taken and a restart shows them again
(``ChatStore.tool_steps``). The chat's grants, with the tools approved "always", live in the
conversation's settings under ``"agent"``.
"""

from __future__ import annotations

from collections.abc import Generator

from macapp.core.agent.approvals import Approvals
from macapp.core.agent.guard import Grants
from macapp.core.agent.loop import AgentEvent, AgentLimits, AgentResult, ToolStep, run_agent
from macapp.core.agent.tools import Toolbox
from macapp.core.chat.store import ChatStore, Conversation
from macapp.core.engines.base import ChatMessage, Engine, SamplingSettings
from macapp.core.engines.templates import with_system
from macapp.core.errors import Cancelled
from macapp.core.progress import CancelToken

SETTINGS_KEY = "agent"


def grants_of(conversation: Conversation) -> Grants:
    """What ``conversation`` grants its agent (nothing, for a chat that never used tools)."""
    return Grants.from_json(conversation.settings.get(SETTINGS_KEY))


def save_grants(store: ChatStore, conversation_id: int, grants: Grants) -> Conversation:
    settings = store.get_conversation(conversation_id).settings
    return store.update_conversation(conversation_id, settings={**settings, SETTINGS_KEY: grants.to_json()})


def run_in_chat(
    store: ChatStore,
    conversation_id: int,
    task: str,
    engine: Engine,
    toolbox: Toolbox,
    *,
    grants: Grants | None = None,
    limits: AgentLimits | None = None,
    sampling: SamplingSettings | None = None,
    cancel: CancelToken | None = None,
    first_call_required: bool = False,
) -> Generator[AgentEvent, None, AgentResult]:
    """``run_agent`` on the conversation's thread plus ``task``, saving the run as it goes.

    Args:
        grants: the chat's grants (default: those saved with it); "always" approvals are saved back.
    Yields:
        what ``run_agent`` yields; answer approval requests the same way.
    """
    conversation = store.get_conversation(conversation_id)
    grants = grants if grants is not None else grants_of(conversation)
    earlier: list[ChatMessage] = [
        {"role": m.role, "content": m.content}
        for m in store.thread(conversation_id)
        if m.role in ("user", "assistant") and m.status != "streaming"
    ]
    messages = with_system([*earlier, {"role": "user", "content": task}], conversation.system_prompt)
    save_grants(store, conversation_id, grants)
    store.add_message(conversation_id, "user", task)
    answer = store.begin_message(
        conversation_id, "assistant", model=engine.model_id, settings={SETTINGS_KEY: {"tools": list(toolbox.names)}}
    )
    always = set(grants.always)
    stream = run_agent(
        engine,
        messages,
        toolbox,
        approvals=Approvals(grants),
        limits=limits,
        sampling=sampling,
        cancel=cancel,
        first_call_required=first_call_required,
    )
    try:
        while True:
            try:
                event = next(stream)
            except StopIteration as done:
                result: AgentResult = done.value
                break
            if isinstance(event, ToolStep):
                store.add_tool_step(
                    answer.id,
                    event.index,
                    event.call.id,
                    event.call.name,
                    event.call.arguments,
                    event.status,
                    effect=event.effect,
                    approval=event.approval,
                    result=event.result,
                    duration_s=event.duration_s,
                )
                if grants.always != always:
                    save_grants(store, conversation_id, grants)
                    always = set(grants.always)
            yield event
    except GeneratorExit:
        store.finish_message(answer.id, "interrupted")
        raise
    except (KeyboardInterrupt, Cancelled):
        store.finish_message(answer.id, "cancelled", finish_reason="cancelled")
        raise
    except BaseException:
        store.finish_message(answer.id, "error")
        raise
    store.append_text(answer.id, result.answer)
    store.finish_message(
        answer.id, "cancelled" if result.stop_reason == "cancelled" else "done", finish_reason=result.stop_reason
    )
    return result
