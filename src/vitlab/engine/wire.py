"""Engine events as JSON lines: how a training child process streams its events to the TUI.

`encode(event)` is one line of JSON; `decode(line)` gives the same typed, frozen event back (Memory and the
summary dict included). A run that could not start at all travels as `RunNotStarted`, which is not an
engine event: no run directory exists for it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from .events import (EpochEvaluated, Event, Memory, RunCancelled, RunFailed, RunFinished, RunKept, RunStarted,
                     StepsLogged, WarningRaised)


@dataclass(frozen=True)
class RunNotStarted:
    """A run that never started (e.g. the runs directory is not writable); `message` is one short line."""

    run: str
    message: str

    to_dict = Event.to_dict


MESSAGE_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    RunStarted, StepsLogged, EpochEvaluated, WarningRaised, RunFinished, RunFailed, RunCancelled, RunKept,
    RunNotStarted)}

WireMessage = Event | RunNotStarted


def from_dict(data: dict[str, Any]) -> WireMessage:
    """The typed message back from its `to_dict()`; a missing field raises, an unknown one is ignored."""
    cls = MESSAGE_TYPES[data["event"]]
    values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
    if cls is StepsLogged:
        values["memory"] = Memory(**values["memory"])
    return cls(**values)


def encode(message: WireMessage) -> str:
    return json.dumps(message.to_dict())  # NaN losses travel as NaN, as in metrics.jsonl


def decode(line: str | bytes) -> WireMessage:
    """Raises ValueError for a line that is not a message (the caller skips it)."""
    try:
        return from_dict(json.loads(line))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not an engine event: {e}") from None
