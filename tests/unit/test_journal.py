"""The call journal (worker/journal.py) on real files: what a SIGKILLed owner leaves behind,
and that nobody reads a living owner's journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx

from worker import journal as journal_module
from worker.journal import (
    INTENT,
    MAKING,
    SLOT,
    SUFFIX,
    WRITING,
    CallJournal,
    dead_journals,
    host_tag,
    journal_dir,
)
from worker.services import journal_writes

TAG = "t0000000000a"
INTENTS = [("m-intent", "c1"), ("m-second", "c4"), ("b-2", "c5"), ("y-1", "c7"),
           ("z-1", "c8"), ("z-2", "c8"), ("z-3", "c8")]

# A process whose first thread is about to mark m-intent, whose second thread has written
# m-written's request, and whose third went on to a second message after writing its first;
# then batches: one part written, one replaced by a single, one longer than its row.
CHILD = textwrap.dedent("""
    import sys, threading, time
    from pathlib import Path
    from worker.journal import CallJournal

    journal = CallJournal(Path(sys.argv[1]), sys.argv[2], row_slots=3)
    def run(steps):
        for step in steps:
            if step == "write":
                journal.writing()
            elif isinstance(step, int):
                journal.select(step)
            elif isinstance(step, list):
                journal.intend_many(step)
            else:
                journal.intend(*step)
    threads = [threading.Thread(target=run, args=(s,)) for s in (
        [("m-intent", "c1")],
        [("m-written", "c2"), "write"],
        [("m-first", "c3"), "write", ("m-second", "c4")],
        # a batch: its first and third written, its second not yet; then a longer one
        [[("b-1", "c5"), ("b-2", "c5"), ("b-3", "c5")], 0, "write", 2, "write"],
        [[("x-1", "c6"), ("x-2", "c6"), ("x-3", "c6")], [("y-1", "c7")]],
        [[("z-1", "c8"), ("z-2", "c8"), ("z-3", "c8"), ("z-4", "c8")], 3, "write"],
    )]
    for t in threads:
        t.start()
        t.join()
    print(journal.path, flush=True)
    time.sleep(60)
""")


def _child(directory: Path, tag: str = TAG) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), tag],
                            stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None
    path = Path(proc.stdout.readline().strip())
    assert path.parent == directory, f"the child did not open its journal: {path}"
    return proc, path


def test_a_killed_owner_leaves_its_intents_and_a_living_one_is_not_read(tmp_path: Path):
    proc, path = _child(tmp_path)
    try:
        assert dead_journals(tmp_path, TAG) == [], "a living owner's journal was read"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert path.exists(), "a SIGKILL cannot have removed it"
    [dead] = dead_journals(tmp_path, TAG)
    # Only what was never written: not the written one, not a message the thread moved past,
    # not a call past its row's slots (unjournalled: left to the lease sweep).
    assert dead.intents == INTENTS
    assert dead_journals(tmp_path, TAG) == [], "a journal locked by its settler was read twice"
    dead.discard()
    assert not path.exists()
    assert dead_journals(tmp_path, TAG) == []


def test_a_dead_journal_not_settled_is_found_again(tmp_path: Path):
    proc, _ = _child(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    [dead] = dead_journals(tmp_path, TAG)
    dead.release()  # Redis was away: kept for the next scan
    [again] = dead_journals(tmp_path, TAG)
    assert again.intents == INTENTS
    again.discard()


def test_another_deployments_journals_are_not_read(tmp_path: Path):
    proc, path = _child(tmp_path, tag="other0000000")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert dead_journals(tmp_path, TAG) == []
    assert [d.path for d in dead_journals(tmp_path, "other0000000")] == [path]


def _intent_file(path: Path) -> Path:
    path.write_bytes(bytes([INTENT, 2]) + b"m9".ljust(64, b"\0") + bytes([2]) + b"c9"
                     + bytes(SLOT - 69))
    return path


def test_a_journal_its_owner_died_making_is_removed_unread(tmp_path: Path):
    making = _intent_file(tmp_path / f"{TAG}-{host_tag()}-1-00000000{MAKING}")
    assert dead_journals(tmp_path, TAG) == []
    assert making.exists(), "a journal just begun was taken from its maker"
    an_hour_ago = time.time() - 3600
    os.utime(making, (an_hour_ago, an_hour_ago))
    assert dead_journals(tmp_path, TAG) == []
    assert not making.exists()


def test_journals_of_another_host_or_layout_are_left_alone(tmp_path: Path):
    elsewhere = _intent_file(tmp_path / f"{TAG}-0badb007-1-00000000{SUFFIX}")
    older = _intent_file(tmp_path / f"{TAG}-{host_tag()}-1-00000000.v0.journal")
    mine = _intent_file(tmp_path / f"{TAG}-{host_tag()}-2-00000000{SUFFIX}")
    [dead] = dead_journals(tmp_path, TAG)
    assert (dead.path, dead.intents) == (mine, [("m9", "c9")])
    dead.discard()
    assert elsewhere.exists() and older.exists()


def test_a_directory_where_flock_is_not_enforced_gets_no_journal(tmp_path: Path, monkeypatch):
    # As on a network filesystem that only pretends to lock: every lock is granted.
    monkeypatch.setattr(journal_module.fcntl, "flock", lambda fd, op: None)
    journal = CallJournal(tmp_path, TAG)
    journal.intend("m1", "c1")
    assert journal.path is None
    assert list(tmp_path.iterdir()) == []


def test_own_journal_is_never_read_and_a_clean_close_removes_it(tmp_path: Path):
    journal = CallJournal(tmp_path, TAG)
    journal.intend("m1", "c1")
    assert journal.path is not None and journal.path.exists()
    assert dead_journals(tmp_path, TAG) == [], "a process read its own living journal"
    journal.close()
    assert list(tmp_path.iterdir()) == []


def test_each_thread_has_its_own_slot(tmp_path: Path):
    journal = CallJournal(tmp_path, TAG)
    other = threading.Thread(target=journal.intend, args=("m-other", "c-other"))
    other.start()
    other.join()
    journal.intend("m-mine", "c-mine")
    journal.writing()  # this thread's only
    assert journal.path is not None
    data = journal.path.read_bytes()
    assert [data[0], data[SLOT]] == [INTENT, WRITING]
    journal.close()


def test_an_id_too_long_to_note_is_left_to_the_lease_sweep(tmp_path: Path):
    journal = CallJournal(tmp_path, TAG)
    journal.intend("m1", "c1")
    journal.intend("x" * 65, "c2")  # the slot must not still say m1
    assert journal.path is not None
    assert journal.path.read_bytes()[0] == 0
    journal.close()


def test_an_unwritable_directory_disables_the_journal_loudly_not_the_sends(tmp_path: Path,
                                                                          capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    journal = CallJournal(blocker / "journal", TAG)
    journal.intend("m1", "c1")
    journal.writing()
    assert journal.path is None
    out = capsys.readouterr()
    assert "journal_unavailable" in out.out + out.err


def test_the_default_directory_is_the_users_own():
    assert journal_dir("/srv/j") == Path("/srv/j")
    assert journal_dir("").name == f"kirim-journal-{os.getuid()}"


def test_an_httpx_provider_client_flips_the_slot_before_its_request(tmp_path: Path):
    journal = CallJournal(tmp_path, TAG)
    seen: list[int] = []

    def provider(request: httpx.Request) -> httpx.Response:
        assert journal.path is not None
        seen.append(journal.path.read_bytes()[0])  # what a SIGKILL now would leave
        return httpx.Response(200, text="ok")

    client = httpx.Client(transport=httpx.MockTransport(provider))
    journal_writes(client, journal)
    journal.intend("m1", "c1")
    client.post("http://provider.test/send", data={"a": "b"})
    assert seen == [WRITING]
    journal.close()


def test_intend_many_says_how_many_it_holds_and_unwritten_which_were_not_written(
        tmp_path: Path):
    journal = CallJournal(tmp_path, TAG, row_slots=3)
    assert journal.intend_many([("a", "c"), ("b", "c"), ("c", "c"), ("d", "c")]) == 3
    journal.select(1)
    journal.writing()
    assert journal.unwritten() == [0, 2]
    assert journal.intend_many([("e", "c"), ("x" * 65, "c"), ("f", "c")]) == 1
    assert journal.unwritten() == [0]
    assert journal.intend_many([("g", "c")]) == 1 and journal.unwritten() == [0]
    journal.close()


def test_no_journal_holds_nothing(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    journal = CallJournal(blocker, TAG, row_slots=8)
    assert journal.intend_many([("a", "c")]) == 0
    assert journal.unwritten() == []
