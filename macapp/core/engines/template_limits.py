"""What a chat template may cost: a deadline and a size limit, checked inside the render.

jinja2's sandbox keeps a template from reaching anything outside it, not from looping for ever or
building a huge string. ``LimitedSandbox`` checks the render's ``Budget`` wherever a template can
spend time or memory: every step of every for-loop, every call (macros, recursion, methods,
``loop.cycle``), every filter, the operators ``+ * ** %``, ``~`` and the rendered output. Operations
that multiply a size by a number (``'x' * n``, ``center(n)``, ``'%9999999d'``, ``2 ** n``) are
refused before they allocate. Compiling is bounded by the source's length; deep nesting ends in a
``RecursionError`` within milliseconds.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

RENDER_TIMEOUT_S = 1.0  # real templates render in well under 10 ms (bench/template_render.py); a hostile one
# costs one pause this long (plus the last step it was in), then ChatML
MAX_VALUE_SIZE = 4_000_000  # characters (a list counts its items too) in any value a template builds, beyond
# twice the conversation: ~1M tokens, more than any context holds, and a pass over it takes well under a second
MAX_SPENT = 16  # times the value size: all the text a render may build in total (``+`` in a loop builds a lot)
MAX_ITEMS = MAX_RANGE  # items in a list a template builds by * or +: jinja's own cap on range()
MAX_INT_BITS = 100_000  # ~30,000 digits; larger ints make ** and * slow in C, where no deadline reaches
MAX_CALL_DEPTH = 100  # nested macro calls; real templates recurse a few levels (tool schemas), Python's limit is 1000
MAX_SOURCE_CHARS = 64_000  # 4x the largest real template (gpt-oss, ~16 KB); compiling takes 10-50 µs per character
SLOW_FILTER_INPUT = 100_000  # characters a pure-Python filter (wordwrap, urlize, pprint) may be given

# A width or precision of a million or more: ``%0999999999d``, ``%.9999999f``, ``{:>999999999}``.
_FORMAT_NUMBER = re.compile(r"(?:%[-#0 +]*\d*\.?|\{[^{}]*:[^{}]*?)\d{7,}")


class TemplateTooCostly(Exception):
    """The template ran past its deadline or asked for too much memory; ``reason`` completes a notice."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Budget:
    """One render's limits: a deadline (monotonic seconds), a size for any value it builds and for all of them."""

    __slots__ = ("deadline", "limit", "total", "spent", "depth", "timeout")

    def __init__(self, timeout: float = RENDER_TIMEOUT_S, limit: int = MAX_VALUE_SIZE, total: float | None = None):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.limit = limit
        self.total = limit * MAX_SPENT if total is None else total
        self.spent = 0
        self.depth = 0

    @classmethod
    def for_input(cls, size: int, timeout: float = RENDER_TIMEOUT_S) -> Budget:
        """The budget of a render whose variables hold ``size`` characters: they may be copied a few times."""
        return cls(timeout, MAX_VALUE_SIZE + 2 * size)

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateTooCostly(f"took over {self.timeout:g} s to render")

    def allow(self, size: int) -> None:
        if size > self.limit:
            raise TemplateTooCostly(f"builds a value of over {self.limit:,} characters")

    def spend(self, size: int) -> None:
        """``size`` characters were built."""
        self.allow(size)
        self.spent += size
        if self.spent > self.total:
            raise TemplateTooCostly(f"builds over {self.total:,} characters in all")


class _ThreadBudget(threading.local):
    budget = Budget(timeout=float("inf"), total=float("inf"))  # template code run outside ``limited``


_local = _ThreadBudget()


def current() -> Budget:
    return _local.budget


class limited:  # noqa: N801 - used as ``with limited(budget):``
    """Makes ``budget`` the one this thread's template code checks."""

    def __init__(self, budget: Budget):
        self.budget = budget

    def __enter__(self) -> Budget:
        self.previous = _local.budget
        _local.budget = self.budget
        return self.budget

    def __exit__(self, *exc: object) -> None:
        _local.budget = self.previous


def size_of(value: Any, limit: int) -> int:
    """Characters in ``value``, counting each item of a container and shared items each time; stops past ``limit``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return 1
    if isinstance(value, range):
        return 1 + 2 * len(value)
    return _container_size(value, limit, {})


def _container_size(value: Any, limit: int, seen: dict[int, int]) -> int:
    if isinstance(value, Namespace):
        value = value._Namespace__attrs  # its repr shows them all
    if isinstance(value, dict):
        items: Iterable[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return 1
    known = seen.get(id(value))
    if known is not None:
        return known
    seen[id(value)] = limit + 1  # a container inside itself counts as too big
    total = 1
    for item in items:
        total += 1 + (len(item) if isinstance(item, str) else _container_size(item, limit, seen))
        if total > limit:
            break
    seen[id(value)] = total
    return total


def _check_int(value: int) -> None:
    if value.bit_length() > MAX_INT_BITS:
        raise TemplateTooCostly(f"builds a number of over {MAX_INT_BITS:,} bits")


def _check_repeat(seq: Any, times: Any) -> None:
    """``seq * times`` for a string or list: refused before it allocates."""
    if isinstance(times, bool) or not isinstance(times, int):
        return
    if isinstance(seq, (list, tuple)) and len(seq) * times > MAX_ITEMS:
        raise TemplateTooCostly(f"builds a list of over {MAX_ITEMS:,} items")
    if isinstance(seq, (str, list, tuple)):
        budget = current()
        budget.allow(size_of(seq, budget.limit) * max(times, 0))


def _check_format(fmt: str, args: Any) -> None:
    """``fmt % args`` / ``fmt.format(...)``: no huge widths or precisions, no huge arguments."""
    if _FORMAT_NUMBER.search(fmt):
        raise TemplateTooCostly("formats with a width of a million or more")
    budget = current()
    values = list(args) if isinstance(args, (tuple, list)) else [args]
    values += [v for mapping in values if isinstance(mapping, dict) for v in mapping.values()]  # format_map, %(x)s
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > budget.limit:
            raise TemplateTooCostly(f"formats with a width of over {budget.limit:,}")
    budget.allow(len(fmt) + size_of(args, budget.limit))


def _binop(operator: str, left: Any, right: Any) -> None:
    """Refuses ``left <operator> right`` when its result would be too large."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            _check_int(left)
            _check_int(right)
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateTooCostly(f"builds a number of over {MAX_INT_BITS:,} bits")
        _check_repeat(left, right)
        _check_repeat(right, left)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateTooCostly(f"builds a number of over {MAX_INT_BITS:,} bits")
    elif operator == "%" and isinstance(left, str):
        _check_format(left, right)
    elif operator == "+":
        if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)) and len(left) + len(right) > MAX_ITEMS:
            raise TemplateTooCostly(f"builds a list of over {MAX_ITEMS:,} items")
        if not isinstance(left, (int, float)):
            budget = current()
            budget.allow(size_of(left, budget.limit) + size_of(right, budget.limit))


def _check_method(method: Any, args: tuple, kwargs: dict) -> None:
    """Methods of ``str`` whose result grows with a number or an argument."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return
    budget = current()
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        budget.allow(args[0])
    elif name == "expandtabs":
        budget.allow(len(owner) * max(int(args[0]) if args else int(kwargs.get("tabsize", 8)), 1))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        budget.allow(len(owner) + owner.count(args[0]) * len(args[1]))
    elif name == "join" and args:
        budget.allow(size_of(args[0], budget.limit) * max(len(owner), 1))


_CHECKED_FILTERS = frozenset(
    {
        "center",
        "indent",
        "format",
        "replace",
        "join",
        "wordwrap",
        "urlize",
        "pprint",
        "striptags",
        "tojson",
        "slice",
        "sum",
    }
)


def _check_filter(name: str, args: tuple, kwargs: dict) -> None:
    """Filters whose result grows with a number, or that are slow in pure Python on a long input."""
    budget = current()
    value = args[0] if args else None
    if name == "center":
        width = args[1] if len(args) > 1 else kwargs.get("width", 80)
        if isinstance(width, int):
            budget.allow(width)
    elif name == "indent":
        width = args[1] if len(args) > 1 else kwargs.get("width", 4)
        text = str(value)
        budget.allow(len(text) + (text.count("\n") + 1) * (len(width) if isinstance(width, str) else int(width)))
    elif name == "format" and isinstance(value, str):
        _check_format(value, (*args[1:], *kwargs.values()))
    elif name == "replace" and len(args) >= 3:
        text, old, new = str(value), str(args[1]), str(args[2])
        budget.allow(len(text) + text.count(old) * len(new))
    elif name == "join":
        separator = args[1] if len(args) > 1 else kwargs.get("d", "")
        budget.allow(size_of(value, budget.limit) * max(len(str(separator)), 2))
    elif name in ("wordwrap", "urlize", "pprint", "striptags") and size_of(value, budget.limit) > SLOW_FILTER_INPUT:
        raise TemplateTooCostly(f"passes over {SLOW_FILTER_INPUT:,} characters to {name}")
    elif name == "tojson":
        indent = args[2] if len(args) > 2 else kwargs.get("indent")
        if (indent if isinstance(indent, int) else len(str(indent or ""))) > 100:
            raise TemplateTooCostly("indents JSON by over 100 spaces")
    elif name == "slice" and len(args) > 1 and isinstance(args[1], int) and args[1] > MAX_ITEMS:
        raise TemplateTooCostly(f"slices into over {MAX_ITEMS:,} parts")
    elif name == "sum" and not isinstance(kwargs.get("start", args[2] if len(args) > 2 else 0), (int, float)):
        raise TemplateTooCostly("sums lists or strings (quadratic)")


def _materialized(args: tuple, index: int) -> tuple:
    """``args`` with the iterable at ``index`` made a list (each step checks the deadline)."""
    if index >= len(args) or isinstance(args[index], (str, list, tuple, dict)):
        return args
    return (*args[:index], list(_loop_steps(args[index])), *args[index + 1 :])


def _limit_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter with the budget checked first and its result measured."""
    pass_arg = getattr(function, "jinja_pass_arg", None)

    @wraps(function)
    def limited_filter(*args: Any, **kwargs: Any) -> Any:
        budget = _local.budget
        budget.tick()
        if name == "join":
            args = _materialized(args, 0 if pass_arg is None else 1)  # to measure it before joining
        plain = args[1:] if pass_arg is not None else args  # context / environment / eval context first
        if plain and type(plain[0]) is not str:
            budget.allow(size_of(plain[0], budget.limit))
        if name in _CHECKED_FILTERS:
            _check_filter(name, plain, kwargs)
        result = function(*args, **kwargs)
        if type(result) is str:
            budget.spend(len(result))
        elif isinstance(result, (list, tuple, dict)):
            budget.spend(size_of(result, budget.limit))
        return result

    return limited_filter


def _loop_steps(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every for-loop iterates through this: each step checks the deadline."""
    tick = current().tick
    for item in iterable:
        tick()
        yield item


def _concat(parts: list[Any]) -> str:
    """The ``~`` operator, its operands measured before they are joined."""
    budget = current()
    budget.spend(sum(size_of(part, budget.limit) for part in parts))
    return "".join(map(str, parts))


def _finalize(value: Any) -> Any:
    """Every ``{{ expression }}`` passes here before it is turned into text."""
    if type(value) is not str:
        budget = current()
        budget.allow(size_of(value, budget.limit))
    return value


def _concat_output(pieces: Iterable[str]) -> str:
    """The rendered text (also of macros and ``{% set %}`` blocks), measured before it is joined."""
    pieces = list(pieces)
    current().spend(sum(map(len, pieces)))
    return "".join(pieces)


def _built(value: Any) -> Any:
    """Every list, tuple and dict literal passes here: ``[x, x]`` in a loop doubles what ``x`` expands to."""
    current().spend(size_of(value, current().limit))
    return value


def _filter(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _rewritten(node: Any) -> Any:
    if isinstance(node, nodes.Concat):
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "_concat")
    if isinstance(node, (nodes.List, nodes.Dict)) or isinstance(node, nodes.Tuple) and node.ctx == "load":
        return _filter(node, "_built")
    return node


def _rewrite(node: nodes.Node) -> None:
    """Routes for-loops through ``_loop_steps``, ``~`` through ``_concat`` and literals through ``_built``."""
    for child in node.iter_child_nodes():
        _rewrite(child)
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            setattr(node, field, [_rewritten(item) for item in value])
        elif isinstance(value, nodes.Node):
            setattr(node, field, _rewritten(value))
    if isinstance(node, nodes.For):
        node.iter = _filter(node.iter, "_loop_steps")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """jinja's immutable sandbox that also keeps to the current ``Budget`` (see the module docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    concat = staticmethod(_concat_output)

    def __init__(self, **options: Any):
        super().__init__(finalize=_finalize, **options)
        self.globals.pop("lipsum", None)  # n paragraphs in a pure-Python loop; no chat template uses it
        self.filters = {name: _limit_filter(name, f) for name, f in self.filters.items()}
        self.filters["_loop_steps"] = _loop_steps
        self.filters["_concat"] = _concat
        self.filters["_built"] = _built

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateTooCostly(f"is {len(source):,} characters long, over {MAX_SOURCE_CHARS:,}")
        tree = super()._parse(source, name, filename)
        _rewrite(tree)
        tree.set_environment(self)
        return tree

    def add_filter(self, name: str, function: Callable[..., Any]) -> None:
        """A filter of our own, kept to the budget like jinja's."""
        self.filters[name] = _limit_filter(name, function)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if type(left) is str and type(right) is str and operator == "+":  # most of a chat template's work
            result = left + right  # at most twice the limit: both were measured when they were built
            if len(result) > MAX_VALUE_SIZE:  # every budget's limit is at least this
                _local.budget.allow(len(result))
            return result
        budget = _local.budget
        _binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        if isinstance(result, (str, list, tuple)):
            budget.spend(len(result))
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = current()
        budget.tick()
        if getattr(__obj, "__name__", "") == "join" and isinstance(getattr(__obj, "__self__", None), str):
            args = _materialized(args, 0)  # to measure it before joining
        _check_method(__obj, args, kwargs)
        if budget.depth >= MAX_CALL_DEPTH:
            raise TemplateTooCostly(f"nests calls over {MAX_CALL_DEPTH} deep")
        budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        if isinstance(result, (str, list, tuple, dict, Namespace)):
            budget.spend(size_of(result, budget.limit))
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__

        @wraps(wrapper)
        def limited_format(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, (*args, *kwargs.values()))
            return wrapper(*args, **kwargs)

        return limited_format
