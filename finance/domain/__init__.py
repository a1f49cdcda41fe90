"""The finance bureau's rules as pure code: the subsidy-claim workflow (states, actions, the one transition
table), due dates in working days, what changed between two sets of facts, budget arithmetic, penalty amounts
due with the statutory late surcharge, and the payment file handed to the bank.

Standard library only: no I/O, no clock (today is passed in), no database. The calendar of Chinese working
days is passed in as a predicate, so the rules stay pure and the tests can use any calendar.
"""

from __future__ import annotations
