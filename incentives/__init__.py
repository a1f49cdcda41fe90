"""Incentives: rules as code for the tax reliefs, subsidies, rewards and green-finance programmes of the
Jiangxi carbon-peaking plan (domain.md section 6).

Dated, cited parameters (`incentives/parameters/*.yaml`) feed pure programme rules (`incentives/domain`)
that return explainable determinations; `incentives/batch/` evaluates many enterprise-years at once on a
vector path, `incentives/whatif.py` prices a reform, and `incentives/engine.py` is the facade other
contexts call. Golden cases that finance staff can read live in `incentives/golden/*.yaml`.

Guarantees:
- Every parameter value has a citation (document and article), a validity (`valid_from` inclusive,
  `valid_to` exclusive or open) and a knowledge day (`published_on`); loading fails otherwise, and fails on
  two entries of one parameter published the same day with overlapping validity. A value not confirmed
  against an official text is flagged `confirmed: false` and says so in its note.
- A query names the day the law is applied on and the day it is known on
  (`ParameterSet.value(name, on=D, known_on=K)`); the latest publication known on K wins.
- Money is integer fen, rates integer basis points or exact ratios; no float ever enters a rule.
  Benefits round half up to the fen, caps round down, minimums needed to pass round up.
- A determination records its inputs, the parameter entries it read, the rule-pack version, named integer
  outputs, the eligible flag and a trace in which every gate shows measured value, threshold, unit,
  pass/fail and citation. All gates are evaluated: an ineligible result lists every failed gate, and a
  failed numeric gate states the smallest change that would pass.
- Determinations are deterministic and JSON-serialisable; `digest()` hashes their canonical JSON.
- The vector path and the scalar explain path give identical eligibility, failed gates and amounts to the
  fen (checked on seeded random populations and on every golden case).
- Programmes that exclude each other are data (`stacking.*.excludes`); when both are eligible the larger
  headline amount is kept, once; claims keys (enterprise × project × equipment serial × invoice) detect
  double claims.
- Changing any single parameter value makes at least one golden case fail (tested).
"""

from __future__ import annotations
