"""Procedures: the YAML model, safe expressions, validation and the JSON Schema.

:func:`load` is the one way to a procedure ready to run (schema, overrides, semantic checks
against the station, once).

The runtime quantities are declared in :mod:`bench.procedure.quantities`.
"""

from bench.procedure.expr import Expr
from bench.procedure.loader import ValidationReport, check_procedure, load, parse_param_pairs
from bench.procedure.model import (
    STEP_RESULTS,
    Procedure,
    Step,
    parse_procedure,
    procedure_sha256,
)

__all__ = [
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
