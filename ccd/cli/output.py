"""Shared output helpers for the CLI: rich tables for people, JSON/CSV for scripts."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table


class _Console:
    """A rich console made at use time (tests and pipes swap stdout); wide when piped."""

    def __getattr__(self, name: str) -> Any:
        wide = None if sys.stdout.isatty() else 200
        return getattr(Console(width=wide), name)


console = _Console()


def show(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, title: str,
         as_json: bool = False, as_csv: bool = False, empty: str = "nothing to show") -> None:
    """Print rows as a table (``columns`` = (key, heading)), JSON or CSV."""
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, default=str, ensure_ascii=False))
        return
    if as_csv:
        w = csv.writer(sys.stdout)
        w.writerow([k for k, _ in columns])
        for r in rows:
            w.writerow([_plain(r.get(k)) for k, _ in columns])
        return
    if not rows:
        console.print(f"[dim]{escape(title)}: {empty}[/]")
        return
    t = Table(title=title)
    for _, heading in columns:
        t.add_column(heading, overflow="fold")
    for r in rows:
        # every value is escaped: caller names come from SIP trunks
        t.add_row(*(escape(_plain(r.get(k))) for k, _ in columns))
    console.print(t)


def _plain(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) < 1e9 else when(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v)
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def when(ts: float | None) -> str:
    """Epoch seconds as UTC wall time."""
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def ok(message: str) -> None:
    console.print(f"[green]✓[/] {escape(message)}")
