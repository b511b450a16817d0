"""Helpers shared by both graphs: node error wrapping, compile-once caching and invocation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .errors import WorkflowError, WorkflowExecutionError

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.runtime import Runtime
    from langgraph.typing import ContextT, StateT, StateT_contra
else:  # importing LangGraph costs ~0.7 s: only where a graph is built (the web app's workers, warm_up)
    ContextT, StateT = TypeVar("ContextT"), TypeVar("StateT")
    StateT_contra = TypeVar("StateT_contra", contravariant=True)

G = TypeVar("G")


class Node(Protocol[StateT_contra, ContextT]):
    """A node as both graphs write them: the state and LangGraph's Runtime in, a state update out."""

    def __call__(self, state: StateT_contra, runtime: Runtime[ContextT]) -> dict[str, Any]: ...


def guarded(workflow: str, name: str, fn: Node[StateT, ContextT]) -> Node[StateT, ContextT]:
    """Wrap a node so unexpected exceptions surface as WorkflowExecutionError naming the node."""

    # The parameter must be called `runtime`: LangGraph injects the Runtime by that name.
    def node(state: StateT, runtime: Runtime[ContextT]) -> dict[str, Any]:
        try:
            return fn(state, runtime)
        except WorkflowError:
            # Deliberate errors (bad input, limits) already carry their meaning.
            raise
        except Exception as exc:
            raise WorkflowExecutionError(workflow, name, exc) from exc

    node.__name__ = name
    node.__qualname__ = name
    node.__doc__ = fn.__doc__
    return node


class CompileOnce(Generic[G]):
    """Build a compiled graph on first use and hand back the same object afterwards."""

    def __init__(self, build: Callable[[], G]) -> None:
        """Remember the builder; nothing is compiled until get() is called."""
        self._build = build
        self._graph: G | None = None
        self._lock = threading.Lock()

    def get(self) -> G:
        """Return the process-wide compiled graph, compiling it exactly once."""
        graph = self._graph
        if graph is None:
            # Threaded workers may race on the first request; the lock keeps it to one compile.
            with self._lock:
                if self._graph is None:
                    self._graph = self._build()
                graph = self._graph
        return graph


def _no_tracing() -> AbstractContextManager[Any]:
    """A context in which LangSmith tracing is off, whatever LANGSMITH_TRACING says."""
    try:  # here, not at the top: langsmith's client costs ~0.4 s to import, and only a run needs it
        from langsmith import tracing_context
    except ImportError:  # langsmith comes with langchain-core today; without it nothing can trace anyway
        return nullcontext()
    return tracing_context(enabled=False)


def invoke(
    workflow: str,
    graph: CompiledStateGraph[Any, ContextT, Any, Any],
    state: Mapping[str, Any],
    context: ContextT,
    *,
    recursion_limit: int = 25,
) -> dict[str, Any]:
    """Run a compiled graph once with tracing forced off and return the final state."""
    # With LANGSMITH_TRACING set, LangGraph would upload the whole state (learners' code, any
    # secrets in it) to a third party; the workflows promise no network at all.
    with _no_tracing():
        try:
            return graph.invoke(dict(state), {"recursion_limit": recursion_limit}, context=context)
        except WorkflowError:
            raise
        except Exception as exc:
            # Failures outside any node (e.g. GraphRecursionError) still reach the caller as a 500.
            raise WorkflowExecutionError(workflow, "graph", exc) from exc
