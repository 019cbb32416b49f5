"""
Ctrl-C and SIGTERM that stop a run cleanly: at its next step, where it can save its work, with the exit status a shell
reports for the signal.
"""

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

#: Exit status of a run stopped by a signal, as a shell reports it (128 + the signal's number)
SIGNAL_EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """The signal that asked the run to stop (SIGINT or SIGTERM), set by :func:`graceful_interrupts`."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None


@contextmanager
def graceful_interrupts() -> Iterator[StopRequest]:
    """
    Within the block, Ctrl-C (SIGINT) and SIGTERM ask the run to stop at its next step instead of raising from inside
    SB3 (a replay buffer half-written); a second Ctrl-C stops at once (KeyboardInterrupt).
    """
    request = StopRequest()
    previous = {signum: signal.getsignal(signum) for signum in SIGNAL_EXIT_STATUS}

    def handler(signum: int, frame: Any) -> None:
        if request.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.signal = signal.Signals(signum)
        print(
            f"\n{request.signal.name}: stopping at the next step to save the run (Ctrl-C again to stop at once)",
            file=sys.stderr,
        )

    if threading.current_thread() is not threading.main_thread():  # Python sets handlers in the main thread only
        yield request
        return
    for signum in SIGNAL_EXIT_STATUS:
        signal.signal(signum, handler)
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class StopOnRequest(BaseCallback):
    """Ends ``learn()`` at the next step once a signal asked to stop (:func:`graceful_interrupts`)."""

    def __init__(self, stop: StopRequest) -> None:
        super().__init__()
        self.stop = stop

    def _on_step(self) -> bool:
        return self.stop.signal is None


class RunInterrupted(Exception):
    """
    A command stopped by Ctrl-C or SIGTERM after saving its work: the message says where and how to continue.

    :param message: The line to print
    :param exit_status: The command's exit status (130 for SIGINT, 143 for SIGTERM)
    """

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status
