"""The VS02 UDS map (``drivers/data/vs02_uds.yaml``): DIDs, routines and DTCs, typed.

The driver's reading of the DID specification in docs/can_uds.md: it decodes with
:meth:`DidSpec.decode` (and encodes writes with :meth:`DidSpec.encode`). The simulated BMS has its
own encoder (``bench/sim/uds_codec.py``); golden vectors hold both to the specification.
UDS payloads are big-endian (ISO 14229 convention); scaled fields store ``round(value / scale)``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.yamlio import load_model

UDS_MAP_PATH = Path(__file__).parent / "data" / "vs02_uds.yaml"

FieldType = Literal["u8", "u16", "u32", "s8", "s16", "s32", "ascii"]
_STRUCT_CODE: dict[str, str] = {"u8": "B", "u16": "H", "u32": "I", "s8": "b", "s16": "h", "s32": "i"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """One field of a DID, routine option/result or DTC data record."""

    name: str
    type: FieldType
    count: int = Field(1, ge=1)
    length: int | None = Field(None, ge=1, description="ascii only: fixed byte length, NUL padded")
    scale: float | None = None
    unit: str = ""
    description: str = ""
    enum: dict[int, str] | None = None
    bits: dict[int, str] | None = None

    @model_validator(mode="after")
    def _ascii_has_length(self) -> FieldSpec:
        if (self.type == "ascii") != (self.length is not None):
            raise ValueError("`length` is required for ascii fields and only allowed for them")
        return self

    @property
    def size(self) -> int:
        if self.type == "ascii":
            assert self.length is not None
            return self.length
        return struct.calcsize(">" + _STRUCT_CODE[self.type]) * self.count

    def encode(self, value: Any) -> bytes:
        if self.type == "ascii":
            assert self.length is not None
            return str(value).encode("ascii", "replace")[: self.length].ljust(self.length, b"\0")
        values = list(value) if self.count > 1 else [value]
        if len(values) != self.count:
            raise ValueError(f"{self.name}: expected {self.count} values, got {len(values)}")
        return struct.pack(f">{self.count}{_STRUCT_CODE[self.type]}", *(self._raw(v) for v in values))

    def decode(self, data: bytes) -> Any:
        if self.type == "ascii":
            # docs/can_uds.md: the text, then NUL padding to the field length. The text ends at
            # the first NUL (whatever a firmware leaves behind it), trailing spaces are padding too.
            return data.split(b"\0", 1)[0].rstrip(b" ").decode("ascii", "replace")
        raws = struct.unpack(f">{self.count}{_STRUCT_CODE[self.type]}", data)
        values = [self._value(r) for r in raws]
        return values if self.count > 1 else values[0]

    def _raw(self, value: Any) -> int:
        if self.enum is not None and isinstance(value, str):
            by_name = {name: code for code, name in self.enum.items()}
            if value not in by_name:
                raise ValueError(f"{self.name}: {value!r} is not one of {sorted(by_name)}")
            return by_name[value]
        if self.bits is not None and not isinstance(value, int):
            by_name = {name: bit for bit, name in self.bits.items()}
            return sum(1 << by_name[name] for name in value)
        if self.scale is not None:
            return round(float(value) / self.scale)
        return int(value)

    def _value(self, raw: int) -> Any:
        if self.enum is not None:
            return self.enum.get(raw, raw)
        if self.bits is not None:
            return [name for bit, name in sorted(self.bits.items()) if raw >> bit & 1]
        if self.scale is not None:
            return raw * self.scale
        return raw


def encode_fields(fields: Sequence[FieldSpec], values: Mapping[str, Any]) -> bytes:
    return b"".join(f.encode(values[f.name]) for f in fields)


def decode_fields(fields: Sequence[FieldSpec], data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    offset = 0
    for f in fields:
        out[f.name] = f.decode(data[offset : offset + f.size])
        offset += f.size
    return out


def fields_size(fields: Iterable[FieldSpec]) -> int:
    return sum(f.size for f in fields)


class RecordsSpec(_Strict):
    """A fixed number of repeated records after the DID's own fields (unused ones are zero)."""

    count: int = Field(ge=1)
    fields: list[FieldSpec]


class DidSpec(_Strict):
    """A data identifier. Value shape: a single field -> its value; otherwise a dict by field name,
    plus ``records`` (a list of dicts) when the DID has repeated records."""

    id: int = Field(ge=0, le=0xFFFF)
    name: str
    description: str = ""
    writable: bool = False
    fields: list[FieldSpec]
    records: RecordsSpec | None = None

    @property
    def size(self) -> int:
        extra = self.records.count * fields_size(self.records.fields) if self.records else 0
        return fields_size(self.fields) + extra

    @property
    def _single(self) -> bool:
        return len(self.fields) == 1 and self.records is None

    def encode(self, value: Any) -> bytes:
        if self._single:
            return self.fields[0].encode(value)
        data = encode_fields(self.fields, value)
        if self.records is not None:
            rows = list(value.get("records", []))[-self.records.count :]
            zero = {f.name: ([0] * f.count if f.count > 1 else 0) for f in self.records.fields}
            rows += [zero] * (self.records.count - len(rows))
            data += b"".join(encode_fields(self.records.fields, row) for row in rows)
        return data

    def decode(self, data: bytes) -> Any:
        if len(data) != self.size:
            raise ValueError(f"DID 0x{self.id:04X} ({self.name}): {len(data)} bytes, expected {self.size}")
        if self._single:
            return self.fields[0].decode(data)
        out = decode_fields(self.fields, data)
        if self.records is not None:
            head = fields_size(self.fields)
            width = fields_size(self.records.fields)
            out["records"] = [
                decode_fields(self.records.fields, data[head + i * width : head + (i + 1) * width])
                for i in range(self.records.count)
            ]
        return out


class RoutineSpec(_Strict):
    id: int = Field(ge=0, le=0xFFFF)
    name: str
    description: str = ""
    long: bool = False
    option: list[FieldSpec] = []
    results: list[FieldSpec] = []


class DtcSpec(_Strict):
    code: int = Field(ge=0, le=0xFFFFFF)
    name: str


class DtcDataSpec(_Strict):
    record: int = Field(ge=1, le=0xFE)
    fields: list[FieldSpec]


class DtcSnapshotSpec(_Strict):
    record: int = Field(ge=1, le=0xFE)
    did: int


class Addressing(_Strict):
    request_id: int
    response_id: int
    padding: int = Field(ge=0, le=0xFF)


class Timing(_Strict):
    p2: int
    p2_star: int
    s3: int


class UdsMap(_Strict):
    addressing: Addressing
    timing_ms: Timing
    dids: list[DidSpec]
    routines: list[RoutineSpec]
    routine_status: dict[int, str]
    dtc_extended_data: DtcDataSpec
    dtc_snapshot: DtcSnapshotSpec
    dtcs: list[DtcSpec]
    dtc_status_bits: dict[int, str]

    @model_validator(mode="after")
    def _unique(self) -> UdsMap:
        for kind, items in (("DID", self.dids), ("routine", self.routines)):
            for attr in ("id", "name"):
                keys = [getattr(i, attr) for i in items]
                dupes = {k for k in keys if keys.count(k) > 1}
                if dupes:
                    raise ValueError(f"duplicate {kind} {attr}: {sorted(map(str, dupes))}")
        codes = [d.code for d in self.dtcs]
        if len(set(codes)) != len(codes):
            raise ValueError("duplicate DTC code")
        if self.dtc_snapshot.did not in {d.id for d in self.dids}:
            raise ValueError(f"dtc_snapshot.did 0x{self.dtc_snapshot.did:04X} is not a DID in the map")
        return self

    def isotp_params(self) -> dict[str, Any]:
        """ISO-TP parameters for both ends: padded 8-byte frames (battery.md §6.2), no flow pauses."""
        return {"tx_padding": self.addressing.padding, "tx_data_min_length": 8, "stmin": 0, "blocksize": 0}

    def did(self, name_or_id: str | int) -> DidSpec:
        for d in self.dids:
            if name_or_id in (d.id, d.name):
                return d
        raise KeyError(f"unknown DID {_show(name_or_id)}; known: {', '.join(d.name for d in self.dids)}")

    def routine(self, name_or_id: str | int) -> RoutineSpec:
        for r in self.routines:
            if name_or_id in (r.id, r.name):
                return r
        known = ", ".join(r.name for r in self.routines)
        raise KeyError(f"unknown routine {_show(name_or_id)}; known: {known}")

    def dtc_name(self, code: int) -> str:
        for d in self.dtcs:
            if d.code == code:
                return d.name
        return f"unknown_{code:06X}"

    def dtc_code(self, name: str) -> int:
        for d in self.dtcs:
            if d.name == name:
                return d.code
        raise KeyError(f"unknown DTC {name!r}")

    def status_names(self, status: int) -> list[str]:
        return [name for bit, name in sorted(self.dtc_status_bits.items()) if status >> bit & 1]


def _show(name_or_id: str | int) -> str:
    return f"0x{name_or_id:04X}" if isinstance(name_or_id, int) else repr(name_or_id)


def load_uds_map(path: str | Path = UDS_MAP_PATH) -> UdsMap:
    """Load and validate a UDS map; errors are located ``file:line:column`` (ConfigError)."""
    return load_model(UdsMap, path)


@cache
def default_uds_map() -> UdsMap:
    """The repository's map, loaded once per process."""
    return load_uds_map(UDS_MAP_PATH)
