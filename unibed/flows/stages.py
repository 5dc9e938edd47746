"""Failure messages that say which stage failed, on what input, and why.

A flow runs its stages inside `stage(flow, name, **inputs)`; whatever a stage
raises becomes one StageFailed whose message is the line a person reads at
the end of the run log, e.g.

    build-dataset: stage beam-build failed for output gs://b/v1 (recipe sample): OSError: ...

The original exception stays attached as the cause (full traceback in the
log). Parameter problems raise ParameterError before any heavy work, naming
the parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from unibed.schemas.errors import SchemaError


class ParameterError(SchemaError):
    """A flow parameter that cannot be used; the message names it."""

    def __init__(self, flow: str, parameter: str, problem: str):
        super().__init__(f"{flow}: parameter {parameter!r}: {problem}")
        self.parameter = parameter


class StageFailed(RuntimeError):
    """A flow stage failed; the message names the flow, stage, inputs and cause."""

    def __init__(self, flow: str, stage: str, inputs: dict[str, str], cause: BaseException):
        self.flow, self.stage, self.inputs, self.cause = flow, stage, inputs, cause
        described = ", ".join(f"{k} {v}" for k, v in inputs.items() if v is not None)
        text = " ".join(str(cause).split()) or type(cause).__name__
        if len(text) > 2000:  # a Beam error can quote a whole traceback: keep its ends
            text = text[:1000] + " ... " + text[-900:]
        super().__init__(f"{flow}: stage {stage} failed for {described}: {type(cause).__name__}: {text}")


@contextmanager
def stage(flow: str, name: str, **inputs: str | None) -> Iterator[None]:
    try:
        yield
    except (StageFailed, ParameterError):
        raise
    except Exception as e:
        raise StageFailed(flow, name, inputs, e) from e
