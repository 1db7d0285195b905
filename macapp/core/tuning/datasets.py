"""Training data for LoRA: mlx-lm's JSONL formats, validated line by line, split, or built from saved chats.

A line is one example in one of three formats (mlx-lm picks the format from the first line):
``{"messages": [{"role": ..., "content": ...}, ...]}`` (chat), ``{"prompt": ..., "completion": ...}``
(completions) or ``{"text": ...}`` (plain text). ``validate_dataset`` reports every problem with its
1-based line number so a person can fix the file in one pass; blank lines are ignored.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from macapp.core.digest import file_sha256
from macapp.core.errors import UserError

FORMATS = ("chat", "completions", "text")
MASKABLE = ("chat", "completions")  # formats with a prompt to leave out of the loss
CHAT_ROLES = ("system", "user", "assistant", "tool")
DEFAULT_MAX_SEQ_LENGTH = 2048
APPROX_CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text under BPE tokenizers
APPROX_TOKENS_PER_MESSAGE = 4  # role markers a chat template adds around each message


@dataclass(frozen=True)
class DatasetProblem:
    """One thing wrong with the file; ``line`` is 1-based (None for the file as a whole)."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


@dataclass(frozen=True)
class TokenStats:
    """Tokens per example as the trainer will see them (chat template applied); ``approx`` without a tokenizer."""

    count: int
    min: int
    mean: float
    max: int
    total: int
    approx: bool = False

    @classmethod
    def of(cls, lengths: Sequence[int], approx: bool = False) -> TokenStats | None:
        if not lengths:
            return None
        return cls(len(lengths), min(lengths), round(statistics.fmean(lengths), 1), max(lengths), sum(lengths), approx)


@dataclass
class DatasetReport:
    """What ``validate_dataset`` found: the format, how many examples, token statistics and every problem."""

    path: Path
    format: str | None
    examples: int
    problems: list[DatasetProblem] = field(default_factory=list)
    tokens: TokenStats | None = None  # None without a tokenizer
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "examples": self.examples,
            "ok": self.ok,
            "problems": [{"line": p.line, "message": p.message} for p in self.problems],
            "tokens": None if self.tokens is None else vars(self.tokens),
            "sha256": self.sha256,
        }


class DatasetError(UserError):
    """A dataset that can't be trained on; ``report.problems`` lists every reason with its line."""

    def __init__(self, report: DatasetReport):
        n = len(report.problems)
        first = report.problems[0] if report.problems else "no examples"
        more = f" (and {n - 1} more problem{'s' if n > 2 else ''})" if n > 1 else ""
        super().__init__(f"{report.path.name}: {first}{more}", hint="fix the file and try again; nothing was trained")
        self.report = report


def read_records(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line."""
    with open(path, encoding="utf-8", errors="strict") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, line


def detect_format(record: dict[str, Any]) -> str | None:
    """The format mlx-lm would use for this record (its precedence: completions, chat, text)."""
    if "prompt" in record and "completion" in record:
        return "completions"
    if "messages" in record:
        return "chat"
    if "text" in record:
        return "text"
    return None


def _missing_keys(record: dict[str, Any]) -> str:
    if "prompt" in record:
        return "has 'prompt' but no 'completion'"
    if "completion" in record:
        return "has 'completion' but no 'prompt'"
    keys = ", ".join(repr(k) for k in list(record)[:5]) or "none"
    return f"no 'messages', 'prompt'/'completion' or 'text' key (keys: {keys})"


def _check_string(value: Any, what: str) -> str | None:
    if not isinstance(value, str):
        return f"{what} must be a string, not {_type_name(value)}"
    if not value.strip():
        return f"{what} is empty"
    return None


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _check_chat(messages: Any, mask_prompt: bool | None) -> list[str]:
    if not isinstance(messages, list):
        return [f"'messages' must be a list, not {_type_name(messages)}"]
    if not messages:
        return ["'messages' is empty"]
    found = []
    for i, msg in enumerate(messages, 1):
        if not isinstance(msg, dict):
            found.append(f"message {i} must be an object, not {_type_name(msg)}")
            continue
        role = msg.get("role")
        if "role" not in msg:
            found.append(f"message {i} has no 'role'")
        elif role not in CHAT_ROLES:
            found.append(f"message {i} has role {role!r} (expected one of {', '.join(CHAT_ROLES)})")
        if "content" not in msg:
            found.append(f"message {i} has no 'content'")
        elif not isinstance(msg["content"], str):
            found.append(f"message {i} content must be a string, not {_type_name(msg['content'])}")
    last = messages[-1].get("role") if isinstance(messages[-1], dict) else None
    if mask_prompt is not False and last in CHAT_ROLES and last != "assistant":
        found.append(
            f"the last message is {last!r}: answers-only training learns the last message, "
            "so end with the assistant's answer"
        )
    return found


def check_record(record: Any, mask_prompt: bool | None = False) -> tuple[str | None, list[str]]:
    """(format, problems) of one parsed line; ``mask_prompt`` None means answers only where the format has them."""
    if not isinstance(record, dict):
        return None, [f"each line must be a JSON object, not {_type_name(record)}"]
    fmt = detect_format(record)
    if fmt is None:
        return None, [_missing_keys(record)]
    if fmt == "chat":
        return fmt, _check_chat(record["messages"], mask_prompt)
    if fmt == "completions":
        checked = [_check_string(record["prompt"], "'prompt'"), _check_string(record["completion"], "'completion'")]
        return fmt, [p for p in checked if p]
    problem = _check_string(record["text"], "'text'")
    found: list[str] = [problem] if problem else []
    if mask_prompt is True:
        found.append("prompt masking needs 'messages' or 'prompt'/'completion' lines, not 'text'")
    return fmt, found


def count_tokens(record: dict[str, Any], fmt: str, tokenizer: Any) -> int:
    """Tokens of one valid record, computed the way mlx-lm's tuner datasets do."""
    if fmt == "text":
        ids = tokenizer.encode(record["text"])
        return len(ids) + (0 if ids and ids[-1] == tokenizer.eos_token_id else 1)
    if fmt == "completions":
        messages = [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["completion"]},
        ]
    else:
        messages = record["messages"]
    return len(tokenizer.apply_chat_template(messages, tools=record.get("tools"), return_dict=False))


def approx_tokens(record: dict[str, Any], fmt: str) -> int:
    """Tokens of one valid record without a tokenizer: characters / 4, plus 4 per chat message."""
    if fmt == "text":
        return -(-len(record["text"]) // APPROX_CHARS_PER_TOKEN) + 1
    if fmt == "completions":
        texts = [record["prompt"], record["completion"]]
    else:
        texts = [m["content"] for m in record["messages"]]
    return sum(-(-len(t) // APPROX_CHARS_PER_TOKEN) + APPROX_TOKENS_PER_MESSAGE for t in texts)


def resolve_mask(requested: bool | None, fmt: str | None) -> tuple[bool, str | None]:
    """(train on answers only?, a note for the person) for a dataset of format ``fmt``.

    ``requested`` None is the default: answers only for chat and prompt/completion data; text has no
    prompt to leave out, so it trains on everything and the note says so.
    """
    if requested is None:
        if fmt == "text":
            return False, "text lines have no prompt to leave out: training learns all of each text"
        return fmt in MASKABLE, None
    if not requested and fmt in MASKABLE:
        return False, "training on the prompts too (not only the answers)"
    return requested, None


def sniff_format(path: str | Path) -> str | None:
    """The format of a dataset's first example (as mlx-lm picks it), or None if it can't be read."""
    try:
        for _, line in read_records(path):
            record = json.loads(line)
            return detect_format(record) if isinstance(record, dict) else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def validate_dataset(
    path: str | Path,
    tokenizer: Any = None,
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    mask_prompt: bool | None = False,
    approximate: bool = False,
) -> DatasetReport:
    """Check a JSONL file line by line and report every problem with its line number.

    Args:
        path: the ``.jsonl`` file.
        tokenizer: an mlx-lm/transformers tokenizer; with it, token statistics and lines longer than
            ``max_seq_length`` tokens (which training would truncate) are reported.
        mask_prompt: the run will train on answers only (text lines can't be masked); None: answers
            only where the format has them (chat and completions lines must then end with an answer).
        approximate: without a tokenizer, give approximate token statistics (``approx_tokens``);
            lengths are then not checked against ``max_seq_length``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"No such dataset file: {path}")
    report = DatasetReport(path=path, format=None, examples=0, sha256=file_sha256(path))
    first_line = None
    lengths: list[int] = []
    try:
        for number, line in read_records(path):
            report.examples += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                report.problems.append(DatasetProblem(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            fmt, found = check_record(record, mask_prompt)
            report.problems.extend(DatasetProblem(number, msg) for msg in found)
            if fmt is None:
                continue
            if report.format is None:
                report.format, first_line = fmt, number
            elif fmt != report.format:
                report.problems.append(
                    DatasetProblem(
                        number, f"mixed formats: this line is {fmt!r} but line {first_line} is {report.format!r}"
                    )
                )
                continue
            if tokenizer is None and approximate and not found:
                lengths.append(approx_tokens(record, fmt))
            elif tokenizer is not None and not found:
                n = count_tokens(record, fmt, tokenizer)
                lengths.append(n)
                if n > max_seq_length:
                    report.problems.append(
                        DatasetProblem(
                            number,
                            f"{n:,} tokens, longer than the maximum sequence length {max_seq_length:,} "
                            "(training would cut it off)",
                        )
                    )
    except UnicodeDecodeError as exc:
        report.problems.append(DatasetProblem(None, f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"))
    if report.examples == 0 and not report.problems:
        report.problems.append(DatasetProblem(None, "the file is empty (no examples)"))
    report.tokens = TokenStats.of(lengths, approx=tokenizer is None)
    return report


@dataclass(frozen=True)
class DatasetSplit:
    train: Path
    valid: Path
    train_examples: int
    valid_examples: int


def split_dataset(
    path: str | Path,
    out_dir: str | Path,
    valid_fraction: float = 0.1,
    min_valid: int = 1,
    min_train: int = 1,
    seed: int = 0,
) -> DatasetSplit:
    """Write ``train.jsonl`` and ``valid.jsonl`` (the layout mlx-lm reads) into ``out_dir``.

    The same file and seed always give the same split; examples keep their order in each part and
    blank lines are dropped. ``valid`` gets ``valid_fraction`` of the examples, at least ``min_valid``.
    """
    lines = [line.rstrip("\r\n") for _, line in read_records(path)]
    n_valid = max(min_valid, 1, round(len(lines) * valid_fraction))
    if len(lines) - n_valid < max(min_train, 1):
        raise UserError(
            f"{Path(path).name} has {len(lines)} examples: too few to keep {n_valid} for validation "
            f"and train on at least {max(min_train, 1)}",
            hint="add examples or lower the batch size",
        )
    chosen = set(random.Random(seed).sample(range(len(lines)), n_valid))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = [line for i, line in enumerate(lines) if i not in chosen]
    valid = [line for i, line in enumerate(lines) if i in chosen]
    write_lines(out / "train.jsonl", train)
    write_lines(out / "valid.jsonl", valid)
    return DatasetSplit(out / "train.jsonl", out / "valid.jsonl", len(train), len(valid))


def write_lines(path: Path, lines: Iterable[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records one JSON object per line (UTF-8, not ASCII-escaped)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lines(path, (json.dumps(r, ensure_ascii=False) for r in records))
    return path


def dataset_from_chats(store: Any, conversation_ids: Iterable[int], include_system: bool = True) -> list[dict]:
    """``{"messages": [...]}`` records from saved conversations, one per conversation.

    Each uses the branch on screen (the versions the user chose, edited ones included). Answers that
    did not finish (``status`` other than done) or are empty are left out together with the question
    they answer; a conversation with no answer left gives no record.
    """
    records = []
    for cid in conversation_ids:
        conversation = store.get_conversation(cid)
        messages: list[dict[str, str]] = []
        if include_system and conversation.system_prompt.strip():
            messages.append({"role": "system", "content": conversation.system_prompt})
        pending: list[dict[str, str]] = []  # user/system turns waiting for a kept answer
        for msg in store.thread(cid):
            if msg.role == "assistant":
                if msg.status == "done" and msg.content.strip() and pending:
                    messages.extend(pending)
                    messages.append({"role": "assistant", "content": msg.content})
                pending = []
            elif msg.role in ("user", "system") and msg.status == "done" and msg.content.strip():
                pending.append({"role": msg.role, "content": msg.content})
        if any(m["role"] == "assistant" for m in messages):
            records.append({"messages": messages})
    return records


def write_chat_dataset(conversation_ids: list[int], store: Any = None) -> tuple[Path, int]:
    """The chosen saved conversations as a JSONL file under the data dir: (path, examples).

    Raises ``UserError`` when none of them has a finished answer to learn from.
    """
    from datetime import datetime

    from macapp.core import paths
    from macapp.core.chat.store import ChatStore

    own = store is None
    store = store or ChatStore()
    try:
        records = dataset_from_chats(store, conversation_ids)
    finally:
        if own:
            store.close()
    if not records:
        raise UserError("None of the chosen conversations has a finished answer to learn from")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return write_jsonl(paths.data_dir() / "tuning-data" / f"chats-{stamp}.jsonl", records), len(records)
