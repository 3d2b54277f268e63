"""Recording files end to end (daemon + simulated Asterisk + PostgreSQL): ccd makes the
tenant's directory tree 0750 before MixMonitor starts, Asterisk writes the file with its
own umask, the writer indexes it inside the tenant's directory and the CLI exports it."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

ALICE = "PJSIP/1001"


async def ccd(stack, *args: str) -> str:
    env = {**os.environ, **stack.env}
    env.pop("CCD_CONFIG", None)
    r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ccd", *args], env=env,
                                capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


async def test_recording_directories_files_index_and_export(stack, tmp_path: Path) -> None:
    # an Asterisk with a lax umask: directories it made would be 0770, its files are 0660
    stack.sim.options.settings.umask = 0o007
    await stack.login(ALICE)
    call = stack.sim.call("2000", "5551000")

    def recording() -> str:
        for c in stack.daemon.model.calls.values():
            cust = c.channels.get(c.customer)
            if cust is not None and cust.name == call.name and cust.recording:
                return cust.recording
        return ""
    path = Path(await stack.until(recording, timeout=30, what="ccd to start the recording"))
    root = Path(stack.config.recording.dir)
    # <root>/demo/YYYY/MM/DD was there, 0750 (ccd's), before Asterisk wrote into it
    assert path.parent.relative_to(root).parts[0] == "demo"
    d = path.parent
    while d != root.parent:
        assert mode(d) == 0o750, d
        d = d.parent
    await stack.sim.clock.sleep(3)
    stack.sim.phone("2000").hangup(call)
    cid = path.stem
    await stack.until(lambda: stack.row("SELECT path FROM recordings WHERE call_id = %s "
                                        "AND stopped_at IS NOT NULL", cid), what="indexed")
    await stack.until(lambda: stack.row("SELECT 1 FROM calls WHERE call_id = %s AND NOT open",
                                        cid), what="stored call")
    assert stack.row("SELECT path FROM recordings WHERE call_id = %s", cid) == (str(path),)
    assert mode(path) == 0o660 and path.stat().st_size > 44  # Asterisk's umask (README)
    assert stack.row("SELECT count(*) FROM recording_refusals") == (0,)

    listed = json.loads(await ccd(stack, "recordings", "list", "--call", cid, "--json"))
    assert [(x["file"], x["bytes"]) for x in listed] == [("audio", path.stat().st_size)]
    out = tmp_path / "export"
    await ccd(stack, "recordings", "export", str(out), "--call", cid)
    with (out / "manifest.csv").open() as f:
        [row] = list(csv.DictReader(f))
    assert (row["status"], row["source"]) == ("copied", str(path))
    assert (out / row["file"]).read_bytes() == path.read_bytes()
    assert mode(out / row["file"]) == 0o640
