"""`executors.TaskChannel`, our end of a pool process's socket, on a real socket pair under both event
loops the worker can run (`--event-loop`): an answer cut into pieces is put back together, one that the
process's end of file cuts short is a crash the runtime can classify, and a closed channel refuses a task."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from qc_worker import zygote
from qc_worker.executors import TaskChannel

RUNNERS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "uvloop": uvloop.run,
    "asyncio": asyncio.run,
}


def answer_in_pieces(theirs: socket.socket, pieces: int, cut_short: bool = False) -> None:
    """The pool process's side: read one frame, send back the same payload reversed, `pieces` sends."""
    (size,) = zygote.HEADER.unpack(zygote._read_exactly(theirs, zygote.HEADER.size))
    payload = zygote._read_exactly(theirs, size)[::-1]
    frame = zygote.HEADER.pack(len(payload)) + payload
    if cut_short:
        frame = frame[: len(frame) // 2]
    step = max(1, len(frame) // pieces)
    for start in range(0, len(frame), step):
        theirs.sendall(frame[start : start + step])
    if cut_short:
        theirs.close()


async def connected(ours: socket.socket) -> TaskChannel:
    _, channel = await asyncio.get_running_loop().create_unix_connection(TaskChannel, sock=ours)
    return channel


@pytest.mark.parametrize("loop", RUNNERS)
def test_an_answer_sent_in_pieces_comes_back_whole(loop: str) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    payload = bytes(range(256)) * 400  # larger than one read
    worker = threading.Thread(target=answer_in_pieces, args=(theirs, 7))

    async def exchange() -> None:
        channel = await connected(ours)
        worker.start()
        answer = await channel.exchange(zygote.HEADER.pack(len(payload)) + payload)
        assert answer == payload[::-1]
        channel.close()

    try:
        RUNNERS[loop](exchange())
    finally:
        worker.join(10)
        theirs.close()


@pytest.mark.parametrize("loop", RUNNERS)
def test_an_answer_cut_short_by_the_process_end_is_an_incomplete_read(loop: str) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    worker = threading.Thread(target=answer_in_pieces, args=(theirs, 3, True))

    async def exchange() -> None:
        channel = await connected(ours)
        worker.start()
        with pytest.raises(asyncio.IncompleteReadError):
            await channel.exchange(zygote.HEADER.pack(5) + b"hello")
        # The process is gone: the next task is refused at once, as a crash (ConnectionError).
        with pytest.raises(ConnectionError):
            await channel.exchange(zygote.HEADER.pack(5) + b"again")

    try:
        RUNNERS[loop](exchange())
    finally:
        worker.join(10)
