"""Procedures: the YAML model, safe expressions, validation and the JSON Schema."""

from bench.procedure.expr import Expr
from bench.procedure.model import (
    QUANTITIES,
    RUNTIME_QUANTITIES,
    STEP_RESULTS,
    Procedure,
    Step,
    load_procedure,
    parse_procedure,
    procedure_sha256,
)

__all__ = [
    "QUANTITIES",
    "RUNTIME_QUANTITIES",
    "STEP_RESULTS",
    "Expr",
    "Procedure",
    "Step",
    "load_procedure",
    "parse_procedure",
    "procedure_sha256",
]
