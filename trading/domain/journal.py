"""Recovery by replay: a book is a pure function of its configuration and its journalled commands.

The sequencer assigns each accepted command the next sequence number of its book and stores
`encode(command)` (JSON-safe primitives) in the same transaction as the command's effects. After a crash
the service reads the rows in sequence order, `decode`s them and calls `replay`: because the matcher is
deterministic, the rebuilt book equals the lost one (`snapshot()` compares equal) and the replayed results
equal the results that were settled. Rejected commands may be journalled too; replaying them changes
nothing, exactly as the first time.
"""

from __future__ import annotations

from collections.abc import Iterable

from trading.domain.book import Book, BookConfig
from trading.domain.commands import Command, JsonScalar, command_from_dict
from trading.domain.model import Result


def encode(command: Command) -> dict[str, JsonScalar]:
    return command.to_dict()


def decode(row: dict[str, JsonScalar]) -> Command:
    return command_from_dict(row)


def replay(commands: Iterable[Command], config: BookConfig | None = None) -> Book:
    """A fresh book with `commands` applied in order."""
    book = Book(config)
    for command in commands:
        book.apply(command)
    return book


def replay_with_results(commands: Iterable[Command], config: BookConfig | None = None) -> tuple[Book, list[Result]]:
    """Like `replay`, also returning each command's result (to re-check settlements against trades)."""
    book = Book(config)
    results = [book.apply(command) for command in commands]
    return book, results
