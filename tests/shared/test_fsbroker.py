"""The embedded broker (shared/fsbroker.py): whole messages only, each taken by one consumer, oldest
first, including messages that arrive after a consumer listed the folder."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kombu import Connection
from kombu.exceptions import ChannelError

from shared import fsbroker

fsbroker.register()


def _connection(folder: Path) -> Connection:
    return Connection(
        "filesystem://",
        transport_options={
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # kombu's default is ./control: keep its exchange files out of the working directory
            "control_folder": str(folder / "control"),
            "store_processed": False,
        },
    )


def _name(kind: str) -> str:
    # kombu remembers declared exchanges per process, not per control folder: a queue name
    # reused by another test would skip its declaration and find no binding in this folder
    return f"{kind}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for sub in ("queue", "processed"):
        (tmp_path / sub).mkdir()
    return tmp_path


def _take_all(queue, limit: int = 100) -> list[int]:
    taken = []
    for _ in range(limit):
        try:
            message = queue.get(block=False)
        except queue.Empty:
            break
        taken.append(message.payload["n"])
        message.ack()
    return taken


def test_two_consumers_take_each_message_once_oldest_first(folder: Path) -> None:
    with _connection(folder) as producer_conn, _connection(folder) as a, _connection(folder) as b:
        images = _name("images")
        out = producer_conn.SimpleQueue(images)
        for n in range(6):
            out.put({"n": n})
        qa, qb = a.SimpleQueue(images), b.SimpleQueue(images)
        first = qa.get(block=False)  # lists the folder: six names
        assert first.payload["n"] == 0
        first.ack()
        # the other consumer takes three of the names the first one holds
        taken_by_b = [qb.get(block=False) for _ in range(3)]
        assert [m.payload["n"] for m in taken_by_b] == [1, 2, 3]
        for n in (6, 7):  # arrive after both listings
            out.put({"n": n})
        assert _take_all(qa) == [4, 5, 6, 7]
        assert _take_all(qb) == []
        assert list((folder / "queue").iterdir()) == []
        assert list((folder / "processed").iterdir()) == []


def test_other_queues_and_partial_files_are_left_alone(folder: Path) -> None:
    images, videos = _name("images"), _name("videos")
    with _connection(folder) as conn:
        conn.SimpleQueue(videos).put({"n": 1})
        partial = folder / "queue" / f"1_x.{images}.msg.part"
        partial.write_bytes(b'{"half')
        assert _take_all(conn.SimpleQueue(images)) == []
        assert partial.exists()
        assert _take_all(conn.SimpleQueue(videos)) == [1]


def test_a_missing_processed_folder_is_an_error_not_an_empty_queue(folder: Path) -> None:
    with _connection(folder) as conn:
        queue = conn.SimpleQueue(_name("images"))
        queue.put({"n": 1})
        (folder / "processed").rmdir()
        with pytest.raises(ChannelError, match="no folder"):
            queue.get(block=False)
        assert len(list((folder / "queue").iterdir())) == 1  # still there for the next consumer
