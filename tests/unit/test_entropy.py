"""Buffered random bytes: unique, the right size, and never shared with a forked child."""

from __future__ import annotations

import os

from producer.core.entropy import token_hex


def test_tokens_have_the_asked_size_and_do_not_repeat() -> None:
    tokens = [token_hex(6) for _ in range(50_000)]  # ~73 draws of the 4 KiB buffer
    assert all(len(t) == 12 and int(t, 16) >= 0 for t in tokens)
    assert len(set(tokens)) == len(tokens)
    assert len(token_hex(5000)) == 10_000  # larger than one draw


def test_a_forked_child_does_not_repeat_the_parents_bytes() -> None:
    token_hex(1)  # the parent's buffer holds unused bytes now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next token and leave
        os.write(write_end, token_hex(16).encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != token_hex(16)
