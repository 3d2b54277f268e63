"""FastAGI: the wire protocol, a typed session API and the asyncio server."""

from ccd.agi.protocol import (
    AgiCommandError,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiReply,
    AgiUsageError,
)
from ccd.agi.server import AgiServer, AgiStats, Fallback, Handler, SessionRunner
from ccd.agi.session import (
    AgiMediaError,
    AgiSession,
    DigitsResult,
    PlayResult,
    RecordOutcome,
)

__all__ = [
    "AgiCommandError",
    "AgiDeadChannel",
    "AgiError",
    "AgiHangup",
    "AgiInvalidCommand",
    "AgiMediaError",
    "AgiProtocolError",
    "AgiReply",
    "AgiServer",
    "AgiSession",
    "AgiStats",
    "AgiUsageError",
    "DigitsResult",
    "Fallback",
    "Handler",
    "PlayResult",
    "RecordOutcome",
    "SessionRunner",
]
