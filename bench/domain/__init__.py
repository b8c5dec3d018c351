"""The bench's own domain knowledge (tables the controller uses), kept apart from the simulator.

The simulator (``bench/sim``) models a pack; this package is what the *controller* believes about
LFP cells. They start from the same published table, but the simulated cells depart from it
(per-cell and per-pack offsets, knee shape), as real cells depart from a datasheet.
"""
