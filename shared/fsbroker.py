"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu's own transport creates a message's file, then writes it. A worker polling the folder can
move and read the file in between, find it empty, and die on the JSON error, losing the message
(seen with the API publishing two messages a few milliseconds apart). Here a message is written
under a name the consumers ignore (``.part``) and renamed into place, so a consumer only ever
sees whole messages. Registered under the ``filesystem://`` scheme by ``shared.queue``.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        # the name kombu's consumers sort and match on: <ms>_<uuid>.<queue>.msg
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + ".part", "wb") as fh:
                fh.write(dumps(payload).encode())
            os.replace(path + ".part", path)
        except OSError as exc:
            raise ChannelError(f"cannot add file {name!r} to the queue folder") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES["filesystem"] = "shared.fsbroker:Transport"
