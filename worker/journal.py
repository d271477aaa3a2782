"""The call journal: the message each sending thread is about to call, kept where a SIGKILL
cannot take it back.

A sender killed after its *calling* mark (in Redis) and before its request is written leaves
a message the lease sweep can only call `unknown`: the provider may have it. Under load that
gap is not short (the mark's reply has to wake the thread: 1.5 ms on average, 6 ms at p99
in the chaos test), so every SIGKILL of a busy worker used to leave a message or two
`unknown` that the provider never saw.

On its own host a worker can tell those apart. Each sending thread owns a slot of a small
file mapped into memory (MAP_SHARED: a write is a store into the page cache, no system
call, and it outlives the process). Before a message's *calling* mark the slot says
INTENT (message id, claim id); just before the request's bytes go to the socket it says
WRITING (`writing`, hooked into the provider client's transport). The process holds an
exclusive flock on its file for its life, so another worker process of the same
deployment on the host (its replacement at start-up, or a neighbour's scan every few
seconds) can take the lock only once the owner is dead. Then every INTENT slot is a
message whose request was never written: it is requeued as a sender lost before its mark
would be (worker/leases.py `requeue_unwritten`, bound to that claim, so a message that
moved on is left alone). A WRITING slot proves nothing and is left to the lease sweep.
The gap that stays ambiguous is the few microseconds between the flip and the write.

A host lost whole takes its journals with it: the lease sweep decides, as before. A thread
past the file's SLOTS slots, or a directory that cannot be written, goes unjournalled (the
sweep decides), never wrong.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from tempfile import gettempdir

import structlog

log = structlog.get_logger("kirim.journal")

IDLE, INTENT, WRITING = 0, 1, 2
SLOT = 128  # bytes: state, id length, id (64), claim length, claim (32)
SLOTS = 1024  # threads per process; the file is sparse, a thread touches one page
_ID_AT, _ID_MAX = 2, 64
_CLAIM_LEN_AT, _CLAIM_AT, _CLAIM_MAX = 66, 67, 32
SUFFIX = ".journal"


def journal_dir(configured: str) -> Path:
    """KIRIM_WORKER_JOURNAL_DIR, or by default a directory of this user's in shared memory
    (the temp directory where there is none)."""
    if configured:
        return Path(configured)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(gettempdir())
    return base / f"kirim-journal-{os.getuid()}"


def deployment_tag(*identity: str) -> str:
    """A short tag for one deployment (its Redis and key prefix): journals of another
    kirim on the same host, or of a test's Redis, are never read as this one's."""
    return hashlib.sha256("\0".join(identity).encode()).hexdigest()[:12]


@dataclass
class _Slot:
    map: mmap.mmap
    at: int
    pid: int


class CallJournal:
    """This process's journal file in `directory`, opened on the first `intend`."""

    def __init__(self, directory: Path, tag: str) -> None:
        self.directory = directory
        self.tag = tag
        self.path: Path | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._map: mmap.mmap | None = None
        self._fd: int | None = None
        self._pid = 0
        self._next = 0
        self._broken = False

    def intend(self, message_id: str, claim_id: str) -> None:
        """This thread is about to mark `message_id` *calling* under `claim_id` (and, if
        the mark holds, to write its request)."""
        slot = self._slot()
        if slot is None:
            return
        mid, claim = message_id.encode(), claim_id.encode()
        m, at = slot.map, slot.at
        m[at] = IDLE  # a half-written entry is never read as an intent
        if len(mid) > _ID_MAX or len(claim) > _CLAIM_MAX:
            return  # not one of ours: unjournalled, the lease sweep decides
        m[at + 1] = len(mid)
        m[at + _ID_AT:at + _ID_AT + len(mid)] = mid
        m[at + _CLAIM_LEN_AT] = len(claim)
        m[at + _CLAIM_AT:at + _CLAIM_AT + len(claim)] = claim
        m[at] = INTENT

    def writing(self, *_: object) -> None:
        """This thread's request bytes are about to leave: its intent may reach the
        provider from now on. Called for every request the provider clients write."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None:  # a fork's child writes into its parent's shared slot: right too
            slot.map[slot.at] = WRITING

    def close(self) -> None:
        """A clean exit: the journal goes with its owner."""
        with self._lock:
            if self._map is not None and self._pid == os.getpid():
                self._map.close()
                if self.path is not None:
                    self.path.unlink(missing_ok=True)
                if self._fd is not None:
                    os.close(self._fd)
            self._map, self._fd, self.path = None, None, None

    def _slot(self) -> _Slot | None:
        slot: _Slot | None = getattr(self._local, "slot", None)
        pid = os.getpid()
        if slot is not None and slot.pid == pid:
            return slot
        with self._lock:
            if self._pid != pid:  # first use, or a fork's child: a file of its own
                self._open(pid)
            if self._map is None or self._next >= SLOTS:
                return None
            slot = _Slot(self._map, self._next * SLOT, pid)
            self._next += 1
        self._local.slot = slot
        return slot

    def _open(self, pid: int) -> None:
        self._pid, self._next, self._map, self._fd = pid, 0, None, None
        if self._broken:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Locked under a name scans skip, then renamed: never seen unlocked.
            final = self.directory / f"{self.tag}-{pid}-{token_hex(4)}{SUFFIX}"
            making = final.with_suffix(".new")
            fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, SLOTS * SLOT)
            self._map = mmap.mmap(fd, SLOTS * SLOT)
            os.rename(making, final)
        except OSError as exc:
            self._broken = True
            log.warning("journal_unavailable", directory=str(self.directory),
                        error=f"{type(exc).__name__}: {exc}",
                        hint="sends go on; a killed worker's marked messages become `unknown`"
                             " (set KIRIM_WORKER_JOURNAL_DIR to a writable directory)")
            return
        self._fd, self.path = fd, final


@dataclass
class DeadJournal:
    """A journal whose owner is dead, locked by this process until `discard` or `release`."""

    path: Path
    fd: int
    intents: list[tuple[str, str]] = field(default_factory=list)  # (message id, claim id)

    def discard(self) -> None:
        """Its intents are settled: remove it."""
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def release(self) -> None:
        """Not settled (Redis away): leave it for the next scan."""
        os.close(self.fd)


def dead_journals(directory: Path, tag: str) -> list[DeadJournal]:
    """Every journal of deployment `tag` in `directory` whose owner is dead (its lock free),
    locked now by this process, with its INTENT slots. This process's own is skipped too:
    flock treats its second descriptor as another owner."""
    found: list[DeadJournal] = []
    try:
        paths = sorted(directory.glob(f"{tag}-*{SUFFIX}"))
    except OSError:
        return found
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # another scan settled it first
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink == 0:  # settled and removed while we waited to lock
                raise BlockingIOError
            data = os.pread(fd, SLOTS * SLOT, 0)
        except OSError:  # its owner lives (or it went away): not ours to read
            os.close(fd)
            continue
        found.append(DeadJournal(path, fd, _intents(data)))
    return found


def _intents(data: bytes) -> list[tuple[str, str]]:
    out = []
    for at in range(0, len(data) - SLOT + 1, SLOT):
        if data[at] != INTENT:
            continue
        id_len, claim_len = data[at + 1], data[at + _CLAIM_LEN_AT]
        if not 0 < id_len <= _ID_MAX or not 0 < claim_len <= _CLAIM_MAX:
            continue
        try:
            out.append((data[at + _ID_AT:at + _ID_AT + id_len].decode(),
                        data[at + _CLAIM_AT:at + _CLAIM_AT + claim_len].decode()))
        except UnicodeDecodeError:
            continue
    return out
