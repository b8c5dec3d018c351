"""JUnit XML of a run, for CI systems: one testcase per check, limits as properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from bench.record import RunRecord
from reports.html import format_limits, format_value


def junit_xml(record: RunRecord) -> str:
    failures = len(record.failed_checks)
    aborted = record.verdict == "aborted"
    suite = ET.Element("testsuite", {
        "name": f"{record.procedure.name} {record.procedure.version}",
        "tests": str(len(record.checks) + (1 if aborted else 0)),
        "failures": str(failures),
        "errors": "1" if aborted else "0",
        "skipped": str(sum(1 for c in record.checks if c.retried)),
        "time": f"{record.bench_hours * 3600:.1f}",
        "timestamp": record.started_at.isoformat(),
        "hostname": record.station.name,
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", record.run_id), ("verdict", record.verdict), ("pack_serial", record.pack.serial),
        ("bms_sw_version", record.pack.bms_sw_version), ("procedure_sha256", record.procedure.sha256),
        ("software_version", record.software_version), ("simulated", str(record.station.simulated).lower()),
        ("operator", record.operator),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    step_times = {s.id: s.start_s for s in record.steps}
    for check in record.checks:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{record.procedure.name}.{check.step_id}", "name": check.id,
            "time": f"{max(0.0, check.t_s - step_times.get(check.step_id, check.t_s)):.1f}",
        })
        props = ET.SubElement(case, "properties")
        for name, value in (("value", format_value(check.value)), ("unit", check.unit),
                            ("limits", format_limits(check)), ("decision_rule", check.decision_rule),
                            ("t_s", f"{check.t_s:g}")):
            ET.SubElement(props, "property", {"name": name, "value": value})
        if check.action:
            ET.SubElement(props, "property", {"name": "action", "value": check.action})
        if check.retried:
            # superseded by a later attempt of its retry group: kept, not counted
            ET.SubElement(case, "skipped", {"message": f"retried: {check.message}"})
        elif not check.passed:
            measured = f"{format_value(check.value)} {check.unit}".strip()
            message = check.message or f"{check.id} = {measured} outside {format_limits(check)}"
            failure = ET.SubElement(case, "failure", {"message": message, "type": "LimitFailure"})
            failure.text = f"{check.description}\n{message}".strip()
    if aborted:
        case = ET.SubElement(suite, "testcase", {"classname": record.procedure.name, "name": "run_completed"})
        ET.SubElement(case, "error", {"message": record.abort_reason or "run aborted", "type": "RunAborted"})
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_junit(record: RunRecord, out: Path) -> Path:
    out.write_text(junit_xml(record), encoding="utf-8")
    return out
