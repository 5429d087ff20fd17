"""Put a bug back into a method, for the tests that show a checker finds it.

May import: the standard library.

``mutated(cls, name, old, new)`` compiles the source of ``cls.name`` with the
text ``old`` (which must occur exactly once) replaced by ``new``, in the
namespace of the method's module, and returns the new function; the tests
install it with ``monkeypatch.setattr``.  A checker that does not fail on a
mutant has not shown it can find that kind of bug.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

__all__ = ["mutated"]


def mutated(cls: Any, name: str, old: str, new: str) -> Any:
    """cls.name (a class's method, or a module's function) with old replaced
    by new in its source (old occurs once)."""
    function = inspect.getattr_static(cls, name)
    source = textwrap.dedent(inspect.getsource(function))
    if source.count(old) != 1:
        raise ValueError(f"{cls.__name__}.{name}: the text to mutate occurs "
                         f"{source.count(old)} times, not once")
    module = inspect.getmodule(function)
    assert module is not None
    namespace: dict[str, Any] = {}
    exec(compile(source.replace(old, new), f"<mutant {cls.__name__}.{name}>", "exec"),
         vars(module), namespace)
    return namespace[name]
