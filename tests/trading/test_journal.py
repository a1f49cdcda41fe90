"""The journal format: commands survive a round trip through JSON, and corrupt rows are refused loudly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from trading.domain.book import BookConfig
from trading.domain.commands import Cancel, Pick, Place, Reduce, command_from_dict
from trading.domain.journal import decode, encode, replay
from trading.domain.model import BookMode, OrderKind, Side

AT = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
AT_SHANGHAI = datetime(2025, 3, 3, 10, 0, tzinfo=timezone(timedelta(hours=8)))

COMMANDS = [
    Place(1, Side.SELL, OrderKind.LIMIT, 10_000, 500, "91360100MA35XXXX0X", AT),
    Place(2, Side.BUY, OrderKind.MARKET, None, 100, "E2", AT_SHANGHAI),
    Cancel(1, AT),
    Cancel(1, AT, "E1"),
    Reduce(3, 50, AT, None),
    Pick(4, Side.BUY, 1, 100, "E3", AT),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips_through_json(command: object) -> None:
    row = json.loads(json.dumps(encode(command)))  # type: ignore[arg-type]
    assert decode(row) == command


def test_the_serialised_form_is_stable() -> None:
    assert encode(COMMANDS[0]) == {
        "type": "place",
        "order_id": 1,
        "side": "sell",
        "kind": "limit",
        "price_fen": 10_000,
        "quantity": 500,
        "owner": "91360100MA35XXXX0X",
        "at": "2025-03-03T02:00:00+00:00",
    }
    assert encode(COMMANDS[4]) == {
        "type": "reduce",
        "order_id": 3,
        "quantity": 50,
        "at": "2025-03-03T02:00:00+00:00",
        "owner": None,
    }


@pytest.mark.parametrize(
    "row",
    [
        {"type": "teleport", "order_id": 1},
        {"type": "cancel", "order_id": "1", "at": "2025-03-03T02:00:00+00:00", "owner": None},
        {"type": "cancel", "order_id": True, "at": "2025-03-03T02:00:00+00:00", "owner": None},
        {"type": "cancel", "order_id": 1, "at": "2025-03-03T10:00:00", "owner": None},
        {"type": "reduce", "order_id": 1, "at": "2025-03-03T02:00:00+00:00"},
        {
            "type": "place",
            "order_id": 1,
            "side": "sideways",
            "kind": "limit",
            "price_fen": 1,
            "quantity": 1,
            "owner": "x",
            "at": "2025-03-03T02:00:00+00:00",
        },
    ],
)
def test_a_corrupt_journal_row_is_refused(row: dict) -> None:
    with pytest.raises((ValueError, KeyError)):
        command_from_dict(row)


def test_replay_of_the_same_journal_twice_gives_equal_books() -> None:
    config = BookConfig(mode=BookMode.LISTED, check_session=False)
    commands = [
        Place(1, Side.SELL, OrderKind.LIMIT, 10_000, 500, "S", AT),
        Place(2, Side.BUY, OrderKind.LIMIT, 9_990, 500, "B", AT),
        Pick(3, Side.BUY, 1, 200, "B", AT),
        Reduce(2, 100, AT, "B"),
    ]
    first, second = replay(commands, config), replay(commands, config)
    assert first.snapshot() == second.snapshot()
    assert first.order(1).quantity == 300  # type: ignore[union-attr]
    assert first.order(2).quantity == 400  # type: ignore[union-attr]
