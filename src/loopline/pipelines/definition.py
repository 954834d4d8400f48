"""`@step` and pipelines: plain functions, traced into a graph before anything runs.

Calling a pipeline's function with its parameters records each step call as a node whose
arguments are constants or the outputs of earlier nodes (placeholders); the runner then
executes the graph, so independent steps can run in parallel and finished ones can be
reused. Outside a pipeline a step is just its function.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, overload

from loopline.core.errors import InvalidInput

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class StepOptions:
    cache: bool = True
    retries: int = 0  # attempts after the first failure
    retry_delay: float = 1.0  # seconds before the first retry; multiplied by `backoff` each time
    backoff: float = 2.0
    timeout: float | None = None  # seconds; a step with a timeout runs in a process of its own
    version: str = ""  # change it to invalidate cached outputs when code the step calls changed

    def __post_init__(self) -> None:
        if self.retries < 0 or self.retry_delay < 0 or self.backoff < 1:
            raise InvalidInput("retries and retry_delay must be >= 0 and backoff >= 1")
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidInput(f"timeout must be a positive number of seconds, got {self.timeout}")


class Step(Generic[P, R]):
    """A function whose calls inside a pipeline become tracked, cached, retried steps."""

    def __init__(self, fn: Callable[P, R], options: StepOptions) -> None:
        if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
            raise InvalidInput(f"step {fn.__qualname__} must be a plain function, not async or a generator")
        self.fn = fn
        self.options = options
        self.name = fn.__name__
        self.qualname = f"{_module_name(fn)}.{fn.__qualname__}"
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<step {self.qualname}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        graph = _tracing.get()
        if graph is None:
            return self.fn(*args, **kwargs)
        return graph.add(self, args, kwargs)  # type: ignore[return-value]

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to worker processes by name, so the worker imports the module defining it; a
        # step of a script (__main__) is sent by value, as the script must not run again.
        if self.fn.__module__ == "__main__":
            return (Step, (self.fn, self.options))
        return (_import_step, (self.fn.__module__, self.fn.__qualname__))

    @functools.cached_property
    def code_digest(self) -> str:
        """What identifies the step's code in cache keys: its source (or bytecode), its
        name and its declared version."""
        try:
            code = textwrap.dedent(inspect.getsource(self.fn)).encode()
        except (OSError, TypeError):
            code = self.fn.__code__.co_code
        digest = hashlib.sha256(code)
        digest.update(f"\0{self.qualname}\0{self.options.version}".encode())
        return digest.hexdigest()


def _module_name(fn: Callable[..., Any]) -> str:
    """The module `fn` is defined in, by the name an import would give it: a script run as
    `python flows.py` is `flows`, as `loopline pipelines run flows:...` imports it, so both
    share one cache."""
    if fn.__module__ != "__main__":
        return fn.__module__
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:  # python -m package.flows
        return str(spec.name)
    try:
        return Path(inspect.getsourcefile(fn) or "").stem or "__main__"
    except TypeError:
        return "__main__"


def _import_step(module: str, qualname: str) -> Step[Any, Any]:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, Step):
        raise InvalidInput(f"{module}.{qualname} is not a @step")
    return found


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    timeout: float | None = None,
    version: str = "",
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(fn: Any = None, /, **options: Any) -> Any:
    """Declare a pipeline step: `@step` or `@step(retries=2, timeout=600, cache=False)`."""
    chosen = StepOptions(**options)
    if fn is None:
        return lambda f: Step(f, chosen)
    return Step(fn, chosen)


@dataclass(frozen=True)
class Placeholder:
    """The output of a step that has not run yet: pass it to other steps or return it."""

    node: str

    def __bool__(self) -> bool:
        raise InvalidInput(
            f"the output of step {self.node!r} is only known when the pipeline runs: pass it to "
            "another step instead of testing it in the pipeline function"
        )

    def __iter__(self) -> Any:
        raise InvalidInput(
            f"the output of step {self.node!r} cannot be unpacked in the pipeline function; "
            "return one value per step"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise InvalidInput(
            f"the output of step {self.node!r} is only known when the pipeline runs: use "
            f".{name} inside a step"
        )


@dataclass
class Node:
    name: str
    step: Step[Any, Any]
    arguments: dict[str, Any]  # constants and Placeholders, by parameter name

    @property
    def upstream(self) -> list[str]:
        return [v.node for v in self.arguments.values() if isinstance(v, Placeholder)]


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)  # in call order, so topologically sorted
    result: Any = None

    def add(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Placeholder:
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"step {step.name}: {exc}") from None
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if isinstance(value, list | tuple | dict) and _holds_placeholder(value):
                raise InvalidInput(
                    f"step {step.name}, argument {name}: pass step outputs directly, not inside a "
                    "list, tuple or dict"
                )
        name, n = step.name, 2
        while name in self.nodes:
            name, n = f"{step.name}_{n}", n + 1
        self.nodes[name] = Node(name, step, dict(bound.arguments))
        return Placeholder(name)


def _holds_placeholder(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(isinstance(v, Placeholder) or (isinstance(v, list | tuple | dict) and _holds_placeholder(v))
               for v in items)  # fmt: skip


_tracing: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("loopline_pipeline", default=None)


class Pipeline:
    """A function composing steps. `trace(**params)` gives its graph; running it is the
    runner's job (`loopline.pipeline` objects run themselves when called)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"

    def parameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The pipeline's parameters with defaults applied; unknown ones are refused."""
        try:
            bound = self.signature.bind(**params)
        except TypeError as exc:
            raise InvalidInput(f"pipeline {self.name}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def trace(self, params: Mapping[str, Any]) -> Graph:
        graph = Graph()
        token = _tracing.set(graph)
        try:
            graph.result = self.fn(**self.parameters(params))
        finally:
            _tracing.reset(token)
        if not graph.nodes:
            raise InvalidInput(f"pipeline {self.name} calls no step")
        if graph.result is not None and not isinstance(graph.result, Placeholder):
            raise InvalidInput(f"pipeline {self.name} must return a step's output or nothing")
        return graph


def import_pipeline(target: str) -> Pipeline:
    """The pipeline named `package.module:name`, imported."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise InvalidInput(f"{target!r} is not MODULE:PIPELINE (e.g. training.flows:nightly)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"cannot import {module_name!r}: {exc}") from None
    found = getattr(module, attribute, None)
    if not isinstance(found, Pipeline):
        raise InvalidInput(
            f"module {module_name} has no pipeline {attribute!r} (decorate it with @loopline.pipeline)"
        )
    return found


def load_pipeline(target: str) -> Pipeline:
    """`package.module:name` or `path/to/file.py:name`, imported; the current folder (or the
    file's) becomes importable, so that worker processes import the steps by the same name."""
    module_name, sep, attribute = target.partition(":")
    if not module_name or not sep or not attribute:
        raise InvalidInput(f"{target!r} is not MODULE:PIPELINE (e.g. training.flows:nightly)")
    folder = Path.cwd()
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise InvalidInput(f"pipeline file {module_name} does not exist")
        folder, module_name = path.resolve().parent, path.stem
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return import_pipeline(f"{module_name}:{attribute}")
