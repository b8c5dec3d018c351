"""Ah/Wh integration from the bench's own measurements, and the bench's reference SOC.

Trapezoidal integration between samples; charge and discharge are integrated separately so
a CC-CV charge and a discharge each report their own throughput. The reference SOC follows
the bench's net Ah from the last anchor (set by the procedure, e.g. 100 % at the end of the
full charge) over the reference capacity (nameplate until the procedure measures one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Throughput:
    ah_charged: float = 0.0
    ah_discharged: float = 0.0
    wh_charged: float = 0.0
    wh_discharged: float = 0.0

    @property
    def ah(self) -> float:
        return self.ah_charged - self.ah_discharged

    @property
    def wh(self) -> float:
        return self.wh_charged - self.wh_discharged

    def add(self, dt_s: float, i0: float, i1: float, v0: float, v1: float) -> None:
        """Integrate one interval; currents + = charge."""
        ah = 0.5 * (i0 + i1) * dt_s / 3600.0
        wh = 0.5 * (i0 * v0 + i1 * v1) * dt_s / 3600.0
        if ah >= 0:
            self.ah_charged += ah
        else:
            self.ah_discharged -= ah
        if wh >= 0:
            self.wh_charged += wh
        else:
            self.wh_discharged -= wh

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class ReferenceSoc:
    """SOC by the bench's own coulomb count from an anchor."""

    capacity_ah: float
    anchor_soc_pct: float | None = None
    anchor_ah: float = 0.0

    def anchor(self, soc_pct: float, net_ah: float) -> None:
        self.anchor_soc_pct = soc_pct
        self.anchor_ah = net_ah

    def rescale(self, capacity_ah: float, net_ah: float) -> None:
        """Change the reference capacity keeping the present SOC continuous."""
        current = self.value(net_ah)
        self.capacity_ah = capacity_ah
        if current is not None:
            self.anchor(current, net_ah)

    def assign(self, name: str, value: float, net_ah: float) -> None:
        """A ``set`` step assigning one of the reference's quantities (the settable ones of
        bench.procedure.quantities): ``ref_soc`` anchors the count at ``value``,
        ``ref_capacity_ah`` rescales it keeping the SOC continuous."""
        setters = {"ref_soc": self.anchor, "ref_capacity_ah": self.rescale}
        if name not in setters:
            raise KeyError(f"{name!r} is not a quantity of the reference SOC")
        setters[name](value, net_ah)

    def value(self, net_ah: float) -> float | None:
        if self.anchor_soc_pct is None:
            return None
        return self.anchor_soc_pct + 100.0 * (net_ah - self.anchor_ah) / self.capacity_ah
