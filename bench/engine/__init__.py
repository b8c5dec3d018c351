"""The run engine: executes a YAML procedure on a connected bench and produces a RunRecord."""
