"""One generic registry for every pluggable piece of rlvr (advantages, losses, verifiers, sources ...).

    ADVANTAGES = Registry("advantage estimator")

    @ADVANTAGES.register("grpo")
    def grpo(...): ...

    ADVANTAGES.get("grpo")      # -> the function
    ADVANTAGES.get("grop")      # -> KeyError: unknown advantage estimator 'grop'; did you mean 'grpo'? choices: ...
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterator


def closest(name: str, choices: list[str]) -> str | None:
    """The closest valid spelling of ``name`` among ``choices`` (or None when nothing is close)."""
    found = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return found[0] if found else None


class Registry:
    """A name -> object table with clear errors for duplicates and unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, obj: Any = None, *, doc: str | None = None) -> Callable[[Any], Any] | Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def add(item: Any) -> Any:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            text = doc if doc is not None else (getattr(item, "__doc__", None) or "")
            self._docs[name] = text.strip().splitlines()[0] if text.strip() else ""
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> Any:
        if name not in self._items:
            hint = closest(name, self.names())
            did_you_mean = f"; did you mean {hint!r}?" if hint else ""
            raise KeyError(f"unknown {self.kind} {name!r}{did_you_mean} choices: {', '.join(self.names())}")
        return self._items[name]

    def summary(self, name: str) -> str:
        """First line of the registered object's docstring (for `rlvr list`)."""
        self.get(name)
        return self._docs[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
