"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu's own transport creates a message's file, then writes it. A worker polling the folder can
move and read the file in between, find it empty, and die on the JSON error, losing the message
(seen with the API publishing two messages a few milliseconds apart). Here a message is written
under a name the consumers ignore (``.part``) and renamed into place, so a consumer only ever
sees whole messages.

kombu also lists and sorts the whole folder for every message it takes: with hundreds of jobs
queued that was about 7% of a worker's CPU per single-image job. Here a consumer keeps the names
one listing found for a queue and takes them oldest first, listing again only when they are used
up (a newer message never sorts before them: the names start with the same clock's nanoseconds).

Registered under the ``filesystem://`` scheme by ``shared.queue``.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from queue import Empty
from time import monotonic_ns

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._listed: dict[str, deque[str]] = {}

    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        # the name consumers sort and match on: <ns>_<uuid>.<queue>.msg (kombu's own has
        # milliseconds, and messages published within one came out in random order)
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + ".part", "wb") as fh:
                fh.write(dumps(payload).encode())
            os.replace(path + ".part", path)
        except OSError as exc:
            raise ChannelError(f"cannot add file {name!r} to the queue folder") from exc

    def _get(self, queue: str) -> dict:
        listed = self._listed.setdefault(queue, deque())
        if not listed:
            wanted = f"{queue}.msg"
            names = os.listdir(self.data_folder_in)
            listed.extend(sorted(n for n in names if n.partition(".")[2] == wanted))
        while listed:
            name = listed.popleft()
            # Renaming into the processed folder (beside the queue folder, so on the same file
            # system) is the claim: of several consumers, one rename succeeds.
            claimed = os.path.join(self.processed_folder, name)
            source = os.path.join(self.data_folder_in, name)
            try:
                os.rename(source, claimed)
            except FileNotFoundError as exc:
                if not os.path.exists(source):
                    continue  # another consumer took it
                raise ChannelError(f"cannot take file {name!r}: no folder {claimed!r}") from exc
            except OSError as exc:
                raise ChannelError(f"cannot take file {name!r} from the queue folder") from exc
            try:
                with open(claimed, "rb") as fh:
                    payload = fh.read()
                if not self.store_processed:
                    os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"cannot read file {name!r} from the queue folder") from exc
            return loads(payload)
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES["filesystem"] = "shared.fsbroker:Transport"
