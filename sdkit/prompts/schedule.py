"""A1111's prompt editing and alternation: which text the model reads at each sampling step.

From A1111's documented behaviour (wiki "Prompt editing", "Alternating words"), written here:

- ``[from:to:when]`` reads ``from`` up to step ``when`` and ``to`` after it; ``[to:when]`` adds ``to`` after
  ``when``; ``[from::when]`` removes ``from`` after ``when``. ``when`` below 1 is a fraction of the steps
  (``0.5`` of 20 steps is step 10), 1 or more a step number.
- ``[a|b|c]`` reads ``a`` at step 1, ``b`` at step 2, ``c`` at step 3, ``a`` again at step 4, …
- Both nest, and both leave emphasis (``(x:1.2)``, ``[x]``) as it is for :func:`~sdkit.prompts.parse_attention`.
- Text that is not well formed (an unclosed ``[``) is read as it is, with no editing, as A1111 does.

Steps are numbered from 1; an entry ``(end, text)`` of a schedule covers the steps after the previous entry's
end up to and including ``end``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ScheduleEntry", "has_schedule", "prompt_schedule"]

_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*")


@dataclass(frozen=True)
class ScheduleEntry:
    """``text`` is read at every step up to ``end`` (inclusive) after the previous entry's end."""

    end: int
    text: str


@dataclass(frozen=True)
class _Scheduled:
    before: tuple  # nodes; empty for [to:when]
    after: tuple
    when: float


@dataclass(frozen=True)
class _Alternate:
    options: tuple  # of node tuples


@dataclass(frozen=True)
class _Group:
    open: str
    body: tuple
    close: str


class _Malformed(Exception):
    pass


def _parse(text: str) -> tuple:
    nodes, pos = _sequence(text, 0, stop="")
    if pos != len(text):  # pragma: no cover - the top level consumes everything
        raise _Malformed
    return nodes


def _sequence(text: str, pos: int, stop: str) -> tuple[tuple, int]:
    """Nodes up to (not including) a character in ``stop`` at this level, or the end."""
    nodes: list = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            nodes.append("".join(buf))
            buf.clear()

    while pos < len(text):
        ch = text[pos]
        if ch in stop:
            break
        if ch == "\\" and pos + 1 < len(text):
            buf.append(text[pos : pos + 2])
            pos += 2
        elif ch == "(":
            flush()
            body, pos = _sequence(text, pos + 1, stop=")")
            if pos >= len(text):
                raise _Malformed
            nodes.append(_Group("(", body, ")"))
            pos += 1
        elif ch == "[":
            flush()
            node, pos = _bracket(text, pos + 1)
            nodes.append(node)
        elif ch in ")]" and not stop:
            buf.append(ch)  # a closing bracket with nothing open is text
            pos += 1
        else:
            buf.append(ch)
            pos += 1
    flush()
    return tuple(nodes), pos


def _bracket(text: str, pos: int) -> tuple[object, int]:
    """After ``[``: a group, an edit or an alternation, up to the matching ``]``."""
    parts: list[tuple] = []
    seps: list[str] = []
    starts: list[int] = [pos]
    while True:
        body, pos = _sequence(text, pos, stop=":|]")
        parts.append(body)
        if pos >= len(text):
            raise _Malformed
        ch = text[pos]
        pos += 1
        if ch == "]":
            break
        seps.append(ch)
        starts.append(pos)
    if not seps:
        return _Group("[", parts[0], "]"), pos
    if all(s == "|" for s in seps):
        return _Alternate(tuple(parts)), pos
    if all(s == ":" for s in seps) and len(seps) in (1, 2):
        raw_when = text[starts[-1] : pos - 1]
        number = _NUMBER.fullmatch(raw_when)
        if number and all(isinstance(n, str) for n in parts[-1]):
            when = float(number.group(1))
            if len(seps) == 1:
                return _Scheduled((), parts[0], when), pos
            return _Scheduled(parts[0], parts[1], when), pos
    # "[a:b]" and other shapes that are not edits: the text as it stands (emphasis reads the brackets)
    return _Group("[", _join_parts(parts, seps), "]"), pos


def _join_parts(parts: list[tuple], seps: list[str]) -> tuple:
    out: list = list(parts[0])
    for sep, part in zip(seps, parts[1:], strict=True):
        out.append(sep)
        out.extend(part)
    return tuple(out)


def _step_of(when: float, steps: int) -> int:
    return min(steps, int(when * steps if when < 1 else when))


def _points(nodes: tuple, steps: int, out: set[int]) -> None:
    for node in nodes:
        if isinstance(node, _Scheduled):
            out.add(_step_of(node.when, steps))
            _points(node.before, steps, out)
            _points(node.after, steps, out)
        elif isinstance(node, _Alternate):
            out.update(range(1, steps + 1))
            for option in node.options:
                _points(option, steps, out)
        elif isinstance(node, _Group):
            _points(node.body, steps, out)


def _render(nodes: tuple, step: int, steps: int) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Scheduled):
            out.append(_render(node.before if step <= _step_of(node.when, steps) else node.after, step, steps))
        elif isinstance(node, _Alternate):
            out.append(_render(node.options[(step - 1) % len(node.options)], step, steps))
        else:
            out.append(node.open + _render(node.body, step, steps) + node.close)
    return "".join(out)


def _tree(text: str) -> tuple | None:
    try:
        return _parse(text)
    except (_Malformed, RecursionError):
        return None


def has_schedule(text: str) -> bool:
    """Whether ``text`` holds a prompt edit or an alternation."""
    if "[" not in text:
        return False
    tree = _tree(text)
    return tree is not None and _any_schedule(tree)


def _any_schedule(nodes: tuple) -> bool:
    for node in nodes:
        if isinstance(node, (_Scheduled, _Alternate)):
            return True
        if isinstance(node, _Group) and _any_schedule(node.body):
            return True
    return False


def prompt_schedule(text: str, steps: int) -> tuple[ScheduleEntry, ...]:
    """The text read at each of ``steps`` sampling steps, as entries that each cover a run of steps.

    >>> prompt_schedule("a [fantasy:cyberpunk:0.5] landscape", 20)
    (ScheduleEntry(end=10, text='a fantasy landscape'), ScheduleEntry(end=20, text='a cyberpunk landscape'))
    >>> [e.text for e in prompt_schedule("a [cow|horse]", 3)]
    ['a cow', 'a horse', 'a cow']
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    tree = _tree(text) if "[" in text else None
    if tree is None or not _any_schedule(tree):
        return (ScheduleEntry(steps, text),)
    points: set[int] = {steps}
    _points(tree, steps, points)
    entries: list[ScheduleEntry] = []
    for point in sorted(p for p in points if 1 <= p <= steps):
        rendered = _render(tree, point, steps)
        if entries and entries[-1].text == rendered:
            entries[-1] = ScheduleEntry(point, rendered)
        else:
            entries.append(ScheduleEntry(point, rendered))
    return tuple(entries)
