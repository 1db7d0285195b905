"""The agent: a model that calls tools in a loop under guardrails (no Qt).

- ``tools``: the one tool shape (built-in and MCP tools alike) and the ``Toolbox`` granted to a chat;
- ``guard``: what a chat grants (tools, folders, the shell) and the folder confinement of file tools;
- ``approvals``: Allow once / Always for this tool in this chat / Deny, remembered per conversation;
- ``loop``: ``run_agent``, model turn → validated calls → approval → run with a timeout → observation;
- ``builtin``: search the chat's documents, read / list / write files, run a command, the date and time;
- ``history``: a run saved in the chat history, every step with its call, approval, result and duration.
"""
