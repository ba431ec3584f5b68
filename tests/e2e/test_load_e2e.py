"""`make load`'s short version: 100 tasks through make dev, then again with the emulator
paused 5 s mid-run; every accepted task completes, none fails, and a submit during the
pause is answered 503 or 429 (sent again) or succeeds."""

from bench.load import main


def test_tasks_complete_through_a_paused_emulator_and_none_fails(capsys):
    assert main(["--tasks", "100", "--users", "4", "--pause", "5", "--batch", "5"]) == 0
    report = capsys.readouterr().out
    assert "steady" in report and "paused" in report
    assert "100/100 completed" in report
    assert "sent during the pause {}" not in report  # some submits met the paused emulator
