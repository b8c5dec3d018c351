"""JSON Schemas of the procedure and station files (for editors and for ``bench schema``)."""

from __future__ import annotations

import json
from typing import Any

from bench.config import StationConfig
from bench.procedure.model import Procedure
from bench.procedure.quantities import QUANTITY_TABLE

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def procedure_schema() -> dict[str, Any]:
    schema = Procedure.model_json_schema(by_alias=True)
    _offer_quantities(schema)
    return {"$schema": SCHEMA_DIALECT, "title": "bench procedure", **schema}


def _offer_quantities(schema: dict[str, Any]) -> None:
    """A limit's ``quantity`` offers the runtime quantities of the one table (with unit and
    meaning, for an editor's completion); any other name is still allowed by the schema: a
    parameter or a variable of an earlier step, which ``bench validate`` checks."""
    schema["$defs"]["RuntimeQuantity"] = {
        "title": "RuntimeQuantity",
        "description": "a quantity the engine provides on every sample (docs/procedures.md)",
        "oneOf": [{"const": q.name, "description": f"{q.description} [{q.unit or q.kind}; {q.source}]"}
                  for q in QUANTITY_TABLE if q.on_sample],
    }
    quantity = schema["$defs"]["Limit"]["properties"]["quantity"]
    quantity.pop("type", None)
    quantity["description"] = "the value the limit judges: a runtime quantity, a parameter or a variable"
    quantity["anyOf"] = [{"$ref": "#/$defs/RuntimeQuantity"}, {"type": "string"}]


def station_schema() -> dict[str, Any]:
    schema = StationConfig.model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_DIALECT, "title": "bench station", **schema}


def schema_text(*, station: bool = False) -> str:
    return json.dumps(station_schema() if station else procedure_schema(), indent=2) + "\n"
