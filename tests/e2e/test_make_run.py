"""`make run`'s main job, as a user starts it: the whole stack as processes, the demo batch."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)


def test_demo_stack_sends_every_scenario_and_stops_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIRIM_")}
    out = subprocess.run(
        [sys.executable, "-m", "producer.cli", "demo", "--stack", "--no-hold",
         "--timeout-s", "60"],
        cwd=tmp_path, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=170, stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert re.search(r"sent normally\s*│\s*30\s*│\s*sent 30", text), text
    assert re.search(r"otp lane\s*│\s*5\s*│\s*sent 5", text)
    assert re.search(r"retry recovers.*│\s*sent 1", text)
    assert re.search(r"dead letter \(-13\).*│\s*dead 1", text)
    assert re.search(r"ambiguous: dropped reply.*│\s*unknown 1", text)
    assert re.search(r"deferred by the -77 guard\s*│\s*12\s*│\s*sent 10, deferred 2", text)
    assert "Flower:" in text and "API:" in text
    logs = {p.name for p in (tmp_path / ".run").glob("*.log")}
    assert {"redis.log", "sandbox.log", "worker-otp.log", "worker-general.log", "beat.log",
            "flower.log", "api.log"} <= logs
    # The stack stopped with the demo: its Redis (data dir under tmp_path) is gone.
    ps = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert ps.stdout.strip() == ""
