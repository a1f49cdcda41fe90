"""The pure incentives domain: bitemporal cited parameters, the rules engine, the programmes and claims keys.

Standard library only; no I/O, no clock, no randomness. Callers pass the parameter set (loaded by
`incentives.parameters`), the facts and the days.
"""

from __future__ import annotations
