"""Property tests: the book stays sound after every step of any command sequence, and replay is exact.

Sequences mix every command (place of every kind, cancel, reduce, pick) with valid and invalid input
(off-tick, off-lot, outside the band, closed market, unknown and stale ids, own listings), on books with
every check on, fees on and each self-trade policy, in both modes.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading.domain.book import Book, BookConfig
from trading.domain.commands import Cancel, Command, Pick, Place, Reduce
from trading.domain.journal import decode, encode, replay, replay_with_results
from trading.domain.model import BookMode, Code, OrderKind, SelfTradePrevention, Side, Status

OPEN = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # Monday 10:00 Shanghai
LUNCH = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)  # Monday 12:00 Shanghai
OWNERS = ("A", "B", "C")


def config(mode: BookMode, stp: SelfTradePrevention) -> BookConfig:
    # Band 900..1,100 fen, tick 5 fen, lot 10 units: generated prices and quantities break each sometimes.
    return BookConfig(
        mode=mode,
        prev_close_fen=1_000,
        tick_fen=5,
        lot_quantity=10,
        quantity_max=2_000,
        stp=stp,
        taker_fee_bps=7,
        maker_fee_bps=3,
    )


# One command as a tuple of primitives, drawn in a single list draw (much faster than drawing field by
# field): operation, kind, price step, off-tick nudge, lots, fault, side, owner, time, target.
raw_commands = st.lists(
    st.tuples(
        st.sampled_from(("place", "place", "place", "cancel", "reduce", "pick")),
        st.sampled_from(list(OrderKind)),
        st.integers(176, 224),
        st.sampled_from((0,) * 9 + (2,)),
        st.integers(1, 30),
        st.sampled_from(("none",) * 12 + ("off-lot", "zero")),
        st.sampled_from(list(Side)),
        st.sampled_from((None, *OWNERS)),
        st.sampled_from((OPEN,) * 9 + (LUNCH,)),
        st.integers(0, 40),
    ),
    min_size=1,
    max_size=80,
)


def build(raw: list, mode: BookMode) -> list[Command]:
    """Commands from raw tuples. Targets are recent placements (live or stale), sometimes unknown ids."""
    commands: list[Command] = []
    placed: list[int] = []
    placed_quantity: dict[int, int] = {}
    next_id = 1
    for op, drawn_kind, step, nudge, lots, fault, side, owner, at, back in raw:
        quantity = {"none": lots * 10, "off-lot": lots * 10 + 3, "zero": 0}[fault]
        target = placed[-1 - back % len(placed)] if placed and back < 38 else next_id + 100
        if op == "place":
            kind = OrderKind.LIMIT if mode is BookMode.LISTED else drawn_kind
            price = None if kind is OrderKind.MARKET else step * 5 + nudge
            commands.append(Place(next_id, side, kind, price, quantity, owner or "A", at))
            placed.append(next_id)
            placed_quantity[next_id] = quantity
            next_id += 1
        elif op == "cancel":
            commands.append(Cancel(target, at, owner))
        elif op == "reduce":
            commands.append(Reduce(target, quantity // 30 * 10 if fault == "none" else quantity, at, owner))
        else:
            # Even lots: the whole listing as placed (a full pick unless it changed since); odd: about half.
            if fault == "none":
                quantity = placed_quantity.get(target, 10) if lots % 2 == 0 else quantity // 20 * 10
            commands.append(Pick(next_id, side, target, quantity, owner or "B", at))
            next_id += 1
    return commands


def seeded(seed: int, count: int) -> list[tuple]:
    """Raw commands with a realistic mix (hypothesis alone favours degenerate, repetitive lists)."""
    rng = random.Random(seed)
    raw: list[tuple] = []
    for _ in range(count):
        raw.append(
            (
                rng.choices(("place", "cancel", "reduce", "pick"), (55, 20, 10, 15))[0],
                rng.choice(list(OrderKind)),
                rng.randint(176, 224),
                2 if rng.random() < 0.05 else 0,
                rng.randint(1, 30),
                "none" if rng.random() < 0.92 else rng.choice(("off-lot", "zero")),
                rng.choice(list(Side)),
                rng.choice((None, *OWNERS)),
                LUNCH if rng.random() < 0.04 else OPEN,
                rng.randint(0, 37) if rng.random() < 0.95 else 40,
            )
        )
    return raw


streams = st.one_of(raw_commands, st.builds(seeded, st.integers(0, 2**32 - 1), st.integers(1, 150)))
modes = st.sampled_from(BookMode)
policies = st.sampled_from(SelfTradePrevention)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=modes, stp=policies, raw=streams)
def test_invariants_hold_after_every_step(mode: BookMode, stp: SelfTradePrevention, raw: list) -> None:
    commands = build(raw, mode)
    book = Book(config(mode, stp))
    band = book.config.band
    assert band is not None
    for command in commands:
        before = book.snapshot()
        result = book.apply(command)
        assert book.check_invariants() == [], (command, result)
        if not result.ok:
            assert book.snapshot() == before, (command, result)
            continue
        traded = sum(trade.quantity for trade in result.trades)
        assert traded == result.filled_quantity
        if isinstance(command, Place):
            assert result.filled_quantity + result.resting_quantity + result.cancelled_quantity == command.quantity
            assert (result.status is Status.RESTING) == (result.resting_quantity > 0)
            for trade in result.trades:
                # The maker's price, within the taker's limit and the band.
                assert band.contains(trade.price_fen)
                if command.price_fen is not None:
                    crosses = (
                        trade.price_fen <= command.price_fen
                        if command.side is Side.BUY
                        else trade.price_fen >= command.price_fen
                    )
                    assert crosses
                if stp is not SelfTradePrevention.OFF:
                    assert trade.maker_owner != trade.taker_owner
            if command.kind is OrderKind.FOK:
                assert result.filled_quantity in (0, command.quantity)
            if command.kind is not OrderKind.LIMIT:
                assert result.resting_quantity == 0
        for trade in result.trades:
            assert trade.notional_fen == trade.price_fen * trade.quantity
            assert trade.taker_fee_fen == trade.notional_fen * 7 // 10_000
            assert trade.maker_fee_fen == trade.notional_fen * 3 // 10_000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=modes, stp=policies, raw=streams)
def test_replaying_the_journal_rebuilds_an_identical_book(mode: BookMode, stp: SelfTradePrevention, raw: list) -> None:
    commands = build(raw, mode)
    cfg = config(mode, stp)
    live = Book(cfg)
    live_results = [live.apply(command) for command in commands]
    # Through the storage format: JSON text, as a database row would hold it.
    journal = [json.dumps(encode(command)) for command in commands]
    restored = [decode(json.loads(row)) for row in journal]
    assert restored == commands
    rebuilt, replayed_results = replay_with_results(restored, cfg)
    assert rebuilt.snapshot() == live.snapshot()
    assert replayed_results == live_results
    assert replay(restored, cfg).snapshot() == live.snapshot()


def test_replay_of_a_prefix_then_the_rest_equals_the_whole() -> None:
    cfg = config(BookMode.CONTINUOUS, SelfTradePrevention.CANCEL_TAKER)
    commands: list[Command] = [
        Place(1, Side.SELL, OrderKind.LIMIT, 1_000, 100, "A", OPEN),
        Place(2, Side.BUY, OrderKind.LIMIT, 1_005, 40, "B", OPEN),
        Reduce(1, 20, OPEN, "A"),
        Place(3, Side.BUY, OrderKind.IOC, 1_000, 100, "C", OPEN),
        Cancel(1, OPEN),
    ]
    whole = replay(commands, cfg)
    book = replay(commands[:2], cfg)
    for command in commands[2:]:
        book.apply(command)
    assert book.snapshot() == whole.snapshot()
    assert whole.status(1) is Status.FILLED
    assert whole.apply(Cancel(1, OPEN)).code is Code.ORDER_FILLED
