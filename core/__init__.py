"""Shared kernel of greenrights: settings, database, the double-entry ledger, identity and access, errors,
idempotency, the audit chain, the clock, quantities and money, the PDF toolkit.

Guarantees:
- Every movement of units or yuan is a balanced ledger transfer between two ledger accounts of one asset;
  per asset, the sums of debits and credits (posted and pending) are always equal.
- A holder account never has debits (posted + pending) above its credits posted: no negative available balance.
- A transfer's client id is unique for ever; a repeat with the same fields returns the original, with other
  fields it is refused. Transfers are immutable; a pending transfer is posted or voided exactly once.
- The audit log is append-only and hash-chained; any edit breaks `verify_chain`.
- Quantities and money are integers of a base unit; parsing at the edge rejects anything that is not exact.
- `core` imports no context package.
"""
