"""bench: hardware-in-the-loop bench controller for the Vethy VS02 PRO battery pack BMS."""

__version__ = "0.1.0"
