"""The state file's journal: a save is a record appended (one ``fdatasync``); what a reader sees is the file with
the records after it replayed; a torn or foreign tail is never trusted; the file is written whole again now and
then, and at a clean stop."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.core.events import Source, Trigger
from orchestrator.core.records import Pause, State
from orchestrator.store.journal import BLOCK, COMPACT_BYTES, JOURNAL_FILE_NAME, Journal, Record, decode, encode
from orchestrator.store.statefile import STATE_FILE_NAME, StateFile, read_state_file

T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)


def pending(count: int) -> State:
    state = State()
    for n in range(count):
        state = state.with_trigger(Trigger(Source.FILE, T0, f"file-{n}"))
    return state


def counts(path: Path) -> dict[str, int]:
    return {job: doc["pendingCount"] for job, doc in read_state_file(path, "snapshot")[0].items()}


def test_saves_after_the_first_are_records_in_the_journal_and_every_reader_sees_them(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    states = StateFile(path)
    assert states.job("snapshot").save(pending(1))  # no file yet: written whole
    written = path.read_bytes()
    assert states.job("snapshot").save(pending(2))
    assert states.job("report").save(pending(5))
    assert path.read_bytes() == written, "the file itself is not rewritten for each save"
    journal = (tmp_path / JOURNAL_FILE_NAME).read_bytes()
    assert len(journal) == 2 * BLOCK
    assert counts(path) == {"snapshot": 2, "report": 5}
    assert StateFile(path).job("snapshot").load() == pending(2)


def test_a_record_holds_only_the_states_that_changed(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    states = StateFile(path)
    assert states.job("snapshot").save(pending(1))
    assert states.job("report").save(pending(1))
    assert states.job("snapshot").save(pending(3))
    records, last = decode((tmp_path / JOURNAL_FILE_NAME).read_bytes(), 0)
    assert [sorted(r.jobs) for r in records] == [["report"], ["snapshot"]]
    assert last == records[-1].seq


def test_a_torn_last_record_is_ignored_and_the_ones_before_it_kept(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    states = StateFile(path)
    assert states.job("snapshot").save(pending(1))
    assert states.job("snapshot").save(pending(2))
    assert states.job("snapshot").save(pending(3))
    journal = tmp_path / JOURNAL_FILE_NAME
    data = journal.read_bytes()
    journal.write_bytes(data[: BLOCK + 40])  # the second record torn half-way (a crash in its write)
    assert counts(path) == {"snapshot": 2}
    flipped = bytearray(data)
    flipped[BLOCK + 30] ^= 0x01  # or one byte of it wrong: its checksum says so
    journal.write_bytes(bytes(flipped))
    assert counts(path) == {"snapshot": 2}
    restarted = StateFile(path)
    assert restarted.job("snapshot").load() == pending(2)
    assert restarted.job("snapshot").save(pending(4)), "after a torn tail the file is written whole"
    assert json.loads(path.read_text())["jobs"]["snapshot"]["pendingCount"] == 4
    assert journal.read_bytes() == b""
    assert counts(path) == {"snapshot": 4}


def test_records_the_file_holds_already_are_skipped_after_a_compaction_cut_short(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    states = StateFile(path)
    assert states.job("snapshot").save(pending(1))
    assert states.job("snapshot").save(pending(2))
    journal = tmp_path / JOURNAL_FILE_NAME
    kept = journal.read_bytes()
    states.close()  # folded into the file; then, as if the service died before the journal was emptied:
    journal.write_bytes(kept)
    document = json.loads(path.read_text())
    assert document["journal"] == decode(kept, 0)[1]
    # A later state in the file is not taken back by the older record.
    document["jobs"]["snapshot"] = pending(7).to_json()
    path.write_text(json.dumps(document))
    assert counts(path) == {"snapshot": 7}
    restarted = StateFile(path)
    assert restarted.job("snapshot").load() == pending(7)
    assert restarted.job("snapshot").save(pending(8))
    assert counts(path) == {"snapshot": 8}


def test_a_record_that_does_not_follow_the_last_one_ends_the_journal(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    StateFile(path).job("snapshot").save(pending(1))
    journal = Journal(tmp_path / JOURNAL_FILE_NAME)
    after = json.loads(path.read_text())["journal"]
    journal.append(Record(after + 1, {"snapshot": pending(2).to_json()}))
    journal.append(Record(after + 3, {"snapshot": pending(9).to_json()}))  # one missing between
    assert counts(path) == {"snapshot": 2}


def test_a_big_journal_is_folded_into_the_file_and_a_clean_stop_folds_it_too(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    states = StateFile(path)
    journal = tmp_path / JOURNAL_FILE_NAME
    n = 0
    while n < COMPACT_BYTES // BLOCK + 2:
        n += 1
        assert states.job("snapshot").save(pending(n % 50))
    assert journal.stat().st_size < COMPACT_BYTES
    assert states.job("snapshot").save(State(paused=Pause(T0, "quiet")))
    states.close()
    assert journal.read_bytes() == b""
    assert json.loads(path.read_text())["jobs"]["snapshot"]["paused"] == {
        "since": "2026-01-20T10:00:00.000Z",
        "reason": "quiet",
    }


def test_a_record_is_padded_to_whole_blocks_and_read_back(tmp_path: Path) -> None:
    record = Record(5, {"snapshot": {"pendingCount": 1}, "gone": None})
    data = encode(record)
    assert len(data) % BLOCK == 0
    assert decode(data + encode(Record(6, {})), 4) == ([record, Record(6, {})], 6)
    assert decode(data, 5) == ([], 5)


def test_a_version_2_file_of_before_the_journal_loads_and_is_written_whole_at_the_first_save(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    before = {"version": 2, "jobs": {"snapshot": pending(2).to_json(), "report": pending(1).to_json()}}
    path.write_text(json.dumps(before))  # what the versions before the journal wrote: no "journal"
    states = StateFile(path)
    assert states.job("snapshot").load() == pending(2)
    assert states.job("snapshot").save(pending(3))
    document = json.loads(path.read_text())
    assert document["journal"] == 0 and document["jobs"]["report"] == pending(1).to_json()
    assert states.job("snapshot").save(pending(4))
    assert json.loads(path.read_text())["jobs"]["snapshot"]["pendingCount"] == 3, "then journaled"
    assert counts(path) == {"snapshot": 4, "report": 1}


@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hard link"])
def test_a_link_at_the_journal_s_name_is_never_read_nor_written_through(
    tmp_path: Path, plant: Callable[[Path, Path], None]
) -> None:
    """A symlink or a hard link there is not the journal: its content is no record, and the next save removes
    the name and writes a journal of its own, the file the link led to untouched."""
    path = tmp_path / STATE_FILE_NAME
    first = StateFile(path)
    assert first.job("snapshot").save(pending(1))  # the file, written whole
    assert first.job("snapshot").save(pending(2))  # a record
    journal = tmp_path / JOURNAL_FILE_NAME
    victim = tmp_path / "victim"
    before = journal.read_bytes()  # a record that would read as the journal's, were it followed
    victim.write_bytes(before)
    journal.unlink()
    plant(victim, journal)

    states = StateFile(path)
    assert states.job("snapshot").load().pending_count == 1, "the link's record is not the state's"
    assert states.job("snapshot").save(pending(3))
    assert states.job("snapshot").save(pending(4))
    assert victim.read_bytes() == before, "nothing truncated or appended there"
    info = os.lstat(journal)
    assert stat.S_ISREG(info.st_mode) and info.st_nlink == 1
    assert counts(path) == {"snapshot": 4}
