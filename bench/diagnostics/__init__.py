"""Pack-health diagnostics: read the BMS over the adapter (``readout``), judge it with the service
procedure's rules (``rules``, pure functions) and show it (``render``). ``bench diag`` drives them."""
