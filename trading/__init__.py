"""Trading context of greenrights: order books (continuous price-time matching and the national listed
agreement mode 挂牌协议/摘牌), block trades, one-way and primary auctions, and market data; the pure rules live
in `trading.domain`, settlement goes through the ledger.

Guarantees:
- The matcher is pure and deterministic: integer fen prices and integer base-unit quantities, order ids and
  `now` supplied by the caller, no clock, no I/O, no iteration over unordered collections. The same commands
  in the same order give the same results, trades and `snapshot()`; `journal.replay` rebuilds a book from its
  journalled commands exactly.
- Every command returns a `Result` with a stable code; a rejected command changes nothing.
- The book is never crossed; every level holds only live orders, is removed as soon as it empties, and its
  total equals the sum of its orders; the id map holds exactly the resting orders (`check_invariants()`).
- A trade always executes at the resting (maker) order's price, in strict price-time priority; a reduction
  keeps the order's place in its queue; IOC and market residuals never rest; FOK fills completely or has no
  effect at all; a pick takes a listing within the opposite side's best five levels at the listing's price.
- For each placement, filled + resting + cancelled quantity equals the order quantity, and every cancel or
  reduction reports the quantity released, so holds on units and funds can be released exactly.
- Prices lie inside the band around the previous close (edges rounded inward to the tick), on the tick,
  quantities on the lot step; orders of one owner never trade with each other when self-trade prevention is on.
- Fees are integer fen per trade, rounded half up; closing and average prices are volume-weighted and rounded
  half up to the tick; block trades and auctions never set the close.
- Auction clearing is a pure function of the terms, the bids and a seed: ties break in a seeded random order
  of bid ids fixed before the auction, never by hash or arrival order.
"""
