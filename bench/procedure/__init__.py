"""Procedures: the YAML model, safe expressions, validation and the JSON Schema.

:func:`load` is the one way to a procedure ready to run (schema, overrides, semantic checks
against the station, once).
"""

from bench.procedure.expr import Expr
from bench.procedure.loader import ValidationReport, check_procedure, load, parse_param_pairs
from bench.procedure.model import (
    QUANTITIES,
    RUNTIME_QUANTITIES,
    STEP_RESULTS,
    Procedure,
    Step,
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
    "ValidationReport",
    "check_procedure",
    "load",
    "parse_param_pairs",
    "parse_procedure",
    "procedure_sha256",
]
