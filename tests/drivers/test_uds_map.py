"""The UDS map file: validation, codecs, and agreement with the simulated firmware's codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import InputError
from drivers.uds_map import UDS_MAP_PATH, default_uds_map, load_uds_map


def test_repository_map_loads_and_covers_battery_md_dids():
    uds = default_uds_map()
    # battery.md §6.2 identification DIDs and the project DIDs
    for did in (0xF18C, 0xF195, 0xF193, 0xF18B, 0x0100, 0x0110, 0x0111, 0x0112, 0x0113, 0x0114,
                0x0115, 0x0116, 0x0117, 0x0118, 0x0119, 0x011A, 0x011B):
        assert uds.did(did).id == did
    assert [r.id for r in uds.routines] == [0x0201, 0x0202, 0x0203, 0x0204, 0x0205]
    assert uds.addressing.request_id == 0x7E4 and uds.addressing.padding == 0xCC
    assert uds.timing_ms.p2_star == 5000


@pytest.mark.parametrize(
    "name, value",
    [
        ("cell_voltages", [3.301, 3.2, 3.65, 2.5, 3.3, 3.3, 3.3, 3.3]),
        ("pack_current", -123.456),
        ("temperatures", [25.1, -10.5, 60.0, 25.0, 25.0, 25.0, 25.0, 25.0, 22.2]),
        ("serial", "VS02P-1"),
        ("divergence", {"divergence": 0.12, "condition": "full_rest"}),
    ],
)
def test_did_round_trip(name, value):
    spec = default_uds_map().did(name)
    data = spec.encode(value)
    assert len(data) == spec.size
    assert spec.decode(data) == pytest.approx(value) if not isinstance(value, (str, dict)) else value


def test_serial_is_the_text_before_the_first_nul():
    # docs/can_uds.md: identification DIDs are the ASCII text, then NUL bytes to the field length.
    # A firmware that copies a shorter string into a reused buffer leaves bytes after the NUL.
    spec = default_uds_map().did("serial")
    assert spec.decode(b"VS02P-25-004711\x00") == "VS02P-25-004711"
    assert spec.decode(b"VS02P-1\x00\xffOLD-SER") == "VS02P-1"
    assert spec.decode(b"VS02P-1   \x00\x00\x00\x00\x00\x00") == "VS02P-1"  # space padding too
    assert spec.encode("VS02P-25-004711") == b"VS02P-25-004711\x00"


def test_scaled_values_are_big_endian_raw_counts():
    uds = default_uds_map()
    assert uds.did("soc").encode(63.27) == (6327).to_bytes(2, "big")
    assert uds.did("pack_current").encode(-1.5) == (-1500).to_bytes(4, "big", signed=True)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="cell_voltages"):
        default_uds_map().did("cell_voltage")


def test_dtc_names_and_status_bits():
    uds = default_uds_map()
    assert uds.dtc_name(0x911001) == "cell_overvoltage"
    assert uds.dtc_name(0x123456) == "unknown_123456"
    assert uds.status_names(0x09) == ["test_failed", "confirmed"]


def test_map_agrees_with_the_simulated_firmware():
    types = pytest.importorskip("bench.sim.bms_types")
    uds = default_uds_map()
    for code in types.DtcCode:
        assert uds.dtc_name(code) == code.name.lower()
    for rid in types.RoutineId:
        uds.routine(int(rid))
    flags = uds.did("gauge_status").fields[0].bits
    assert flags is not None and len(flags) == len(types.GaugeFlags)


def test_bad_map_is_reported_with_file_line_column(tmp_path: Path):
    text = UDS_MAP_PATH.read_text().replace("name: soc,", "name: soc, colour: red,", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(InputError) as err:
        load_uds_map(bad)
    message = str(err.value)
    assert "bad.yaml:" in message and "colour" in message


def test_docs_frame_table_matches_the_dbc():
    from drivers.vs02_dbc import frame_table_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "can_uds.md").read_text()
    table = doc.split("<!-- frame-table:start -->\n", 1)[1].split("\n<!-- frame-table:end -->", 1)[0]
    assert table == frame_table_markdown()
