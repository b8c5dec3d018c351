"""``bms`` step actions: UDS service calls through the adapter driver, results as variables.

Variables produced: ``<into>.<did>`` (or ``<did>``) for reads, ``<into>.<field>`` and
``<into>.status`` for routine results, ``<into>.count`` / ``<into>.codes`` for DTC reads.
Results that feed verdicts also land under the names the quantity table declares for them
(``ROUTINE_RESULTS`` of bench.procedure.quantities), which the record picks up.
"""

from __future__ import annotations

from typing import Any

from bench.procedure.quantities import ROUTINE_RESULTS


def _numeric(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, int | float) for v in value):
        return value
    return str(value)


def run_bms_action(adapter: Any, item: Any) -> dict[str, Any]:
    produced: dict[str, Any] = {}
    if hasattr(item, "session"):
        adapter.session(item.session)
    elif hasattr(item, "unlock"):
        adapter.unlock(item.unlock)
    elif hasattr(item, "ecu_reset"):
        adapter.ecu_reset(item.ecu_reset)
    elif hasattr(item, "routine"):
        call = item.routine
        option = bytes.fromhex(call.option.removeprefix("0x")) if call.option else b""
        result = adapter.routine(call.name, call.action, option)
        prefix = call.into or call.name
        produced[f"{prefix}.status"] = result.status or ""
        for key, value in result.values.items():
            produced[f"{prefix}.{key}"] = _numeric(value)
        if call.action == "results":
            for name, result_field in ROUTINE_RESULTS:  # declared in bench.procedure.quantities
                value = result.values.get(result_field)
                if isinstance(value, int | float):
                    produced[name] = float(value)
    elif hasattr(item, "read"):
        values = adapter.read_dids(item.read)
        for key, value in values.items():
            name = f"{item.into}.{key}" if item.into else key
            produced[name] = _numeric(value)
            if isinstance(value, dict):  # multi-field DIDs: <name>.<field> (as bench validate expects)
                for field_name, field_value in value.items():
                    produced[f"{name}.{field_name}"] = _numeric(field_value)
    elif hasattr(item, "read_dtcs"):
        spec = item.read_dtcs
        dtcs = adapter.read_dtcs(spec.mask)
        prefix = spec.into or "dtcs"
        produced[f"{prefix}.count"] = len(dtcs)
        produced[f"{prefix}.codes"] = " ".join(d.code_hex for d in dtcs)
        # one 0/1 flag per DTC of the UDS map (<into>.<dtc name>), so a procedure can branch on a code
        present = {d.code for d in dtcs}
        for known in adapter.uds_map.dtcs:
            produced[f"{prefix}.{known.name}"] = int(known.code in present)
    elif hasattr(item, "clear_dtcs"):
        adapter.clear_dtcs(item.clear_dtcs.group)
    else:  # the model guarantees one of the above
        raise ValueError(f"unknown bms action {item!r}")
    return produced
