"""What a simulated channel offers to the FastAGI client (the contract of ``agi_client.py``).

When a simulated call reaches ``AGI(agi://host:port/script)`` the call engine hands an object
following :class:`AgiChannel` to :func:`ccd.sim.agi_client.run_fastagi`. The client speaks the
FastAGI wire protocol to ccd and maps every AGI command onto these methods; the engine turns them
into the AMI events real Asterisk emits (``VarSet``, ``AGIExecStart``/``AGIExecEnd``,
``Newexten`` for ``EXEC`` ...).

Order of calls for one AGI command (this is what makes the AMI stream match Asterisk)::

    channel.on_command_start('SET VARIABLE IVR_CHOICE "1"')  # -> AGIExecStart
    channel.set_variable("IVR_CHOICE", "1")                    # -> VarSet
    channel.on_command('SET VARIABLE IVR_CHOICE "1"', "200 result=1")  # -> AGIExecEnd

``hung_up`` turns true when the caller hangs up (or the call is redirected away); the client
then answers the pending command with ``HANGUP`` / ``-1`` as Asterisk does and returns
``"HANGUP"``. Awaitable methods return early (with what they had so far) when that happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Asterisk channel states as ``CHANNEL STATUS`` reports them (``200 result=<n>``).
AST_STATE_DOWN, AST_STATE_RESERVED, AST_STATE_OFFHOOK, AST_STATE_DIALING = 0, 1, 2, 3
AST_STATE_RING, AST_STATE_RINGING, AST_STATE_UP, AST_STATE_BUSY = 4, 5, 6, 7


@dataclass(frozen=True, slots=True)
class RecordResult:
    """Outcome of ``RECORD FILE``: the digit that stopped it ('' if none), why, and its length."""

    digit: str
    reason: str  # "dtmf", "timeout", "hangup" (Asterisk's words in the result line)
    seconds: float


@runtime_checkable
class AgiChannel(Protocol):
    """A channel of the simulated PBX, as seen by a FastAGI session."""

    @property
    def hung_up(self) -> bool:
        """True once the channel is gone (caller hung up, redirected, soft-hangup)."""
        ...

    def agi_env(self) -> dict[str, str]:
        """The ``agi_*`` headers in Asterisk's order, e.g. ``{"agi_network": "yes", ...}``.

        Values are sent verbatim (``agi_accountcode`` is ``""``). Includes ``agi_request``,
        ``agi_network_script`` and ``agi_channel`` exactly like the captures' ``agi/*.log``.
        """
        ...

    def channel_status(self) -> int:
        """``CHANNEL STATUS``: the AST_STATE_* number (6 = Up)."""
        ...

    def get_variable(self, name: str) -> str | None:
        """``GET VARIABLE``: the value, or None when unset (client answers ``200 result=0``)."""
        ...

    def evaluate(self, expression: str) -> str:
        """``GET FULL VARIABLE``: expand ``${VAR}`` and ``${CALLERID(all)}``-style functions."""
        ...

    def set_variable(self, name: str, value: str) -> None:
        """``SET VARIABLE``: set a channel variable; the engine emits ``VarSet``."""
        ...

    async def answer(self) -> int:
        """``ANSWER``: 0 on success, -1 if the channel is gone."""
        ...

    async def read_digits(self, max_digits: int, timeout: float) -> str:
        """Digits the (scripted) caller presses, up to ``max_digits``; ``''`` on timeout.

        ``timeout`` is in seconds of simulated time (``GET DATA beep 4000 1`` -> 4.0).
        """
        ...

    async def play(self, filename: str) -> float:
        """``STREAM FILE``/``GET DATA`` prompt: play a sound, return the seconds played.

        ``endpos`` in the AGI result is ``int(seconds * 8000)``. Returns less than the file's
        length when the caller hangs up meanwhile. A sound that does not exist returns -1.0
        (the client answers ``200 result=-1 endpos=0``).
        """
        ...

    async def record(
        self,
        filename: str,
        fmt: str,
        escape_digits: str,
        timeout: float,
        *,
        beep: bool = False,
        silence: float | None = None,
    ) -> RecordResult:
        """``RECORD FILE``: write ``filename.fmt`` (a real small WAV for ``wav``)."""
        ...

    async def exec_app(self, app: str, args: str) -> str:
        """``EXEC app args``: run a dialplan application, return its result ('0', '-1', '-2').

        '-2' means no such application (Asterisk's answer). Runs the application to its end
        (``EXEC Wait 2`` takes two simulated seconds); the engine emits the application's events.
        """
        ...

    def on_command_start(self, command: str) -> None:
        """A command line was received from the AGI server; the engine emits ``AGIExecStart``."""
        ...

    def on_command(self, command: str, result: str, failed: bool = False) -> None:
        """The command finished with ``result`` (the full reply line, e.g. ``200 result=1``);
        ``failed``: its handler failed (Asterisk's RESULT_FAILURE: AGIExecEnd ResultCode -1).

        The engine emits ``AGIExecEnd`` with ``ResultCode`` (200, 510, 511, 520) and ``Result``.
        """
        ...

    async def hangup(self) -> None:
        """``HANGUP``: hang the channel up (AGI then ends with AGISTATUS=HANGUP)."""
        ...
