"""One road from a procedure file to a procedure ready to run: :func:`load`.

Every entry point goes through here (``bench run`` and ``bench resume`` via bench.run.prepare,
``bench validate``, the operator station's start, the pytest plugin's procedure items and
``bench_run`` fixture), so a procedure is checked once, against the station it runs on, with
its parameter overrides applied once:

1. read and check the schema (:func:`bench.procedure.model.parse_procedure`);
2. apply the overrides: each ``NAME=VALUE`` replaces that parameter's default by the parsed
   expression, so the engine evaluates an override exactly as it evaluates a default;
3. the semantic checks (:func:`bench.procedure.validate.check_semantics`) with the station's pack
   and instrument ranges (:func:`bench.config.instrument_ranges`, the rule the bench runs with).

Command-line ``NAME=VALUE`` pairs (``--param``, ``--bench-param``) are split by
:func:`parse_param_pairs` only. Every problem is an :class:`InputError` located as
``file:line:column`` (or ``--param NAME=VALUE``); the CLIs print them and exit 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import StationConfig
from bench.errors import ConfigError, InputError, InputErrors
from bench.procedure.expr import Expr
from bench.procedure.model import Procedure, parse_procedure
from bench.procedure.validate import check_semantics, did_you_mean

PARAM_OPTION = "--param"


@dataclass
class ValidationReport:
    """Result of checking a procedure file: the model (None if the schema failed), problems, notes."""

    procedure: Procedure | None
    errors: list[InputError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def load(procedure: str | Path, station: StationConfig | None = None,
         params: Mapping[str, str] | None = None) -> Procedure:
    """The procedure file ``procedure``, schema- and semantics-checked against ``station`` (None:
    the default pack and no instrument ranges) with the ``params`` overrides applied.

    Raises :class:`InputErrors` listing every problem, each located as ``file:line:column``.
    """
    report = check_procedure(procedure, station, params)
    if report.errors or report.procedure is None:
        raise InputErrors(report.errors)
    return report.procedure


def check_procedure(procedure: str | Path, station: StationConfig | None = None,
                    params: Mapping[str, str] | None = None) -> ValidationReport:
    """:func:`load` that collects every problem and the notes instead of raising (``bench validate``)."""
    try:
        model = parse_procedure(procedure)
    except InputErrors as exc:
        return ValidationReport(None, list(exc.errors))
    except InputError as exc:
        return ValidationReport(None, [exc])
    report = ValidationReport(model, _apply_overrides(model, params or {}))
    errors, notes = check_semantics(model, station)
    report.errors += errors
    report.notes += notes
    return report


def parse_param_pairs(pairs: Iterable[str], *, option: str = PARAM_OPTION) -> dict[str, str]:
    """``["NAME=VALUE", ...]`` -> ``{NAME: VALUE}`` (blanks around either trimmed; a later pair
    wins). Raises :class:`InputErrors` naming every malformed pair."""
    params: dict[str, str] = {}
    errors: list[InputError] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            errors.append(InputError(f"expected NAME=VALUE, got {pair!r}", file=option))
            continue
        params[name.strip()] = value.strip()
    if errors:
        raise InputErrors(errors)
    return params


def _param_where(name: str, text: str) -> str:
    return f"{PARAM_OPTION} {name}={text}"


def _unknown_parameters(procedure: Procedure, params: Mapping[str, str]) -> Iterator[InputError]:
    for name, text in params.items():
        if name not in procedure.parameters:
            known = ", ".join(procedure.parameters) or "none"
            hint = did_you_mean(name, procedure.parameters)
            yield InputError(f"unknown parameter {name!r}{hint} (parameters: {known})",
                             file=_param_where(name, text))


def _apply_overrides(procedure: Procedure, params: Mapping[str, str]) -> list[InputError]:
    """Replace parameter defaults by the override expressions; return the problems."""
    errors = list(_unknown_parameters(procedure, params))
    for name, text in params.items():
        if name not in procedure.parameters:
            continue
        try:
            value = Expr.parse(text, file=_param_where(name, text), line=None, column=1)
        except ConfigError as exc:
            errors.append(exc)
            continue
        parameter = procedure.parameters[name]
        parameter.default = value
        parameter._overridden = True
    return errors
