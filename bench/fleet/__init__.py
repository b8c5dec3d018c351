"""Fleet telematics: the source's service decision rules over many vehicles, and synthetic fleets.

- :mod:`bench.fleet.schema`: documented columns, file reading, row validation.
- :mod:`bench.fleet.rules`: the decision rules as DuckDB SQL.
- :mod:`bench.fleet.analyze`: ``analyze(files or relation) -> FleetReport``.
- :mod:`bench.fleet.simulate`: synthetic telematics with a known answer.
- :mod:`bench.fleet.report`: self-contained HTML.
- :mod:`bench.fleet.cli`: the ``bench fleet`` commands.
"""
