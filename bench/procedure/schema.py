"""JSON Schemas of the procedure and station files (for editors and for ``bench schema``)."""

from __future__ import annotations

import json
from typing import Any

from bench.config import StationConfig
from bench.procedure.model import Procedure

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def procedure_schema() -> dict[str, Any]:
    schema = Procedure.model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_DIALECT, "title": "bench procedure", **schema}


def station_schema() -> dict[str, Any]:
    schema = StationConfig.model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_DIALECT, "title": "bench station", **schema}


def schema_text(*, station: bool = False) -> str:
    return json.dumps(station_schema() if station else procedure_schema(), indent=2) + "\n"
