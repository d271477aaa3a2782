"""The call journal: the message each sending thread is about to call, kept where a SIGKILL
cannot take it back.

A sender killed after its *calling* mark (in Redis) and before its request is written leaves
a message the lease sweep can only call `unknown`: the provider may have it. Under load that
gap is not short (the mark's reply has to wake the thread: 1.5 ms on average, 6 ms at p99
in the chaos test), so every SIGKILL of a busy worker used to leave a message or two
`unknown` that the provider never saw.

On its own host a worker can tell those apart. Each sending thread owns a row of slots (one
per call of its batch) in a small file mapped into memory (MAP_SHARED: a write is a store
into the page cache, no system call, and it outlives the process). Before a message's
*calling* mark its slot says INTENT (message id, claim id); just before the request's bytes
go to the socket it says WRITING (`writing`, hooked into the provider client's transport).
The process holds an exclusive flock on its file for its life, so another worker process
of the same deployment on the host (its replacement at start-up, or a neighbour's scan
every few seconds) can take the lock only once the owner is dead. Then every INTENT slot is a
message whose request was never written: it is requeued as a sender lost before its mark
would be (worker/leases.py `requeue_unwritten`, bound to that claim, so a message that
moved on is left alone). A WRITING slot proves nothing and is left to the lease sweep.
The gap that stays ambiguous is the few microseconds between the flip and the write.

A host lost whole takes its journals with it: the lease sweep decides, as before. A thread
past the file's ROWS rows, a call past its row, or a directory that cannot be written, goes
unjournalled (each such call marked just before its own write, as before), never wrong.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import mmap
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from tempfile import gettempdir

import structlog

log = structlog.get_logger("kirim.journal")

IDLE, INTENT, WRITING = 0, 1, 2
SLOT = 128  # bytes: state, id length, id (64), claim length, claim (32)
ROWS = 1024  # threads per process; the file is sparse, a thread touches one or two pages
_ID_AT, _ID_MAX = 2, 64
_CLAIM_LEN_AT, _CLAIM_AT, _CLAIM_MAX = 66, 67, 32
SUFFIX = ".v1.journal"  # the layout's version: a scan reads only its own
MAKING = ".v1.new"
MAKING_GRACE_S = 60.0  # a journal in the making is left this long to its maker


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
class _Row:
    """A thread's slots: one per call of its batch; `current` is the call being written."""

    map: mmap.mmap
    at: int
    pid: int
    current: int = 0


class CallJournal:
    """This process's journal file in `directory`, opened on the first `intend`; each
    thread has a row of `row_slots` slots (a batch's calls: KIRIM_SEND_BATCH_SIZE)."""

    def __init__(self, directory: Path, tag: str, row_slots: int = 1) -> None:
        self.directory = directory
        self.tag = tag
        self.row_slots = max(1, row_slots)
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
        self.intend_many([(message_id, claim_id)])

    def intend_many(self, calls: Sequence[tuple[str, str]]) -> int:
        """This thread is about to mark each (message id, claim id) *calling*, then write
        their requests in this order (`select` says which is next). Returns how many of the
        first are journalled: the rest (past the row's slots, an id too long to note, no
        journal at all) must each be marked just before its own write, as before the
        journal, since the lease sweep would call them `unknown`."""
        row = self._row()
        if row is None:
            return 0
        m, at = row.map, row.at
        for i in range(self.row_slots):
            m[at + i * SLOT] = IDLE  # a half-written entry is never read as an intent
        row.current = 0
        for i, (message_id, claim_id) in enumerate(calls[:self.row_slots]):
            mid, claim, slot = message_id.encode(), claim_id.encode(), at + i * SLOT
            if len(mid) > _ID_MAX or len(claim) > _CLAIM_MAX:
                return i  # not one of ours
            m[slot + 1] = len(mid)
            m[slot + _ID_AT:slot + _ID_AT + len(mid)] = mid
            m[slot + _CLAIM_LEN_AT] = len(claim)
            m[slot + _CLAIM_AT:slot + _CLAIM_AT + len(claim)] = claim
            m[slot] = INTENT
        return min(len(calls), self.row_slots)

    def unwritten(self) -> list[int]:
        """Which calls of this thread's last `intend_many` were never written."""
        row: _Row | None = getattr(self._local, "row", None)
        if row is None or row.pid != os.getpid():
            return []
        return [i for i in range(self.row_slots) if row.map[row.at + i * SLOT] == INTENT]

    def select(self, i: int) -> None:
        """Call `i` of the last `intend_many` is the next this thread writes."""
        row: _Row | None = getattr(self._local, "row", None)
        if row is not None:
            row.current = i

    def writing(self, *_: object) -> None:
        """This thread's request bytes are about to leave: the selected call's intent may
        reach the provider from now on. Called for every request the provider clients write
        (a call past the row's slots has no intent to flip)."""
        row: _Row | None = getattr(self._local, "row", None)
        if row is not None and row.current < self.row_slots:
            # A fork's child writes into its parent's shared row: right too.
            row.map[row.at + row.current * SLOT] = WRITING

    def close(self) -> None:
        """A clean exit: the journal goes with its owner. The mapping stays (a thread still
        sending writes into the unlinked file) until the process ends."""
        with self._lock:
            if self._pid == os.getpid() and self.path is not None:
                self.path.unlink(missing_ok=True)
            self.path = None

    def _row(self) -> _Row | None:
        row: _Row | None = getattr(self._local, "row", None)
        pid = os.getpid()
        if row is not None and row.pid == pid:
            return row
        with self._lock:
            if self._pid != pid:  # first use, or a fork's child: a file of its own
                self._open(pid)
            if self._map is None:
                return None
            if self._next >= ROWS:
                if self._next == ROWS:  # said once
                    self._next += 1
                    log.warning("journal_full", threads=ROWS,
                                hint="threads past it go unjournalled: lease sweep decides")
                return None
            row = _Row(self._map, self._next * self.row_slots * SLOT, pid)
            self._next += 1
        self._local.row = row
        return row

    def _open(self, pid: int) -> None:
        self._pid, self._next, self._map, self._fd = pid, 0, None, None
        if self._broken:
            return
        final = self.directory / f"{self.tag}-{host_tag()}-{pid}-{token_hex(4)}{SUFFIX}"
        making = final.with_name(final.name.removesuffix(SUFFIX) + MAKING)
        fd = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Locked under a name scans skip, then renamed: never seen unlocked.
            fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _lock_holds(making)
            size = ROWS * self.row_slots * SLOT
            os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
            os.rename(making, final)
            atexit.register(self.close)  # after the pool's threads are joined
        except OSError as exc:
            self._broken, self._map = True, None
            if fd is not None:
                os.close(fd)
                making.unlink(missing_ok=True)
            log.warning("journal_unavailable", directory=str(self.directory),
                        error=f"{type(exc).__name__}: {exc}",
                        hint="sends go on; a killed worker's marked messages become `unknown`"
                             " (set KIRIM_WORKER_JOURNAL_DIR to a writable directory on a"
                             " local filesystem)")
            return
        self._fd, self.path = fd, final


def _lock_holds(path: Path) -> None:
    """Raise unless a second descriptor of `path` is refused the lock just taken: where
    flock is not enforced (some network filesystems), a scan could take a live journal for
    a dead one's and requeue what is being written."""
    probe = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    finally:
        os.close(probe)
    raise OSError(f"flock is not enforced in {path.parent}")


def host_tag() -> str:
    """This boot of this host (its kernel's boot id): a journal on a directory other hosts
    share is never read by them, nor one of an earlier boot, whose locks say nothing."""
    global _HOST_TAG
    if _HOST_TAG is None:
        try:
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            boot = socket.gethostname()
        _HOST_TAG = hashlib.sha256(boot.encode()).hexdigest()[:8]
    return _HOST_TAG


_HOST_TAG: str | None = None


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
    """Every journal of deployment `tag` on this host in `directory` whose owner is dead
    (its lock free), locked now by this process, with its INTENT slots. This process's own
    is skipped too: flock treats its second descriptor as another owner. A journal its
    owner died making is removed."""
    found: list[DeadJournal] = []
    prefix = f"{tag}-{host_tag()}-"
    try:
        paths = sorted(directory.glob(f"{prefix}*"))
    except OSError:
        return found
    for path in paths:
        if not path.name.endswith((SUFFIX, MAKING)):
            continue  # another version's layout: left to the lease sweep
        if path.name.endswith(MAKING) and _age_s(path) < MAKING_GRACE_S:
            continue  # its maker may not have locked it yet
        locked = _lock_dead(path)
        if locked is None:
            continue
        fd, data = locked
        if path.name.endswith(MAKING):  # nothing was ever sent under it
            path.unlink(missing_ok=True)
            os.close(fd)
            continue
        found.append(DeadJournal(path, fd, _intents(data)))
    return found


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _lock_dead(path: Path) -> tuple[int, bytes] | None:
    """`path` locked and read, if its owner is dead; None while it lives (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # another scan settled it first
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:  # settled and removed while we waited to lock
            raise BlockingIOError
        return fd, os.pread(fd, os.fstat(fd).st_size, 0)
    except OSError:  # its owner lives (or it went away): not ours to read
        os.close(fd)
        return None


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
