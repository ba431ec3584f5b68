"""`make dev`'s first steps: a busy port is named with the variable that moves it."""

import os
import socket
import subprocess
import sys

from tests.conftest import ROOT


def test_a_busy_port_is_named_with_the_setting_that_moves_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "LOCAL_DATA_DIR": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "local.dev"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"port {port} is in use: set PORT=" in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing was started
