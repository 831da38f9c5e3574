"""Reading an S3 object by byte range, as a seekable file for libav (PyAV).

PyAV opens any object with ``read``/``seek``/``tell``; libav then asks only for what it
parses: the header and index, then the packets of the GOPs the plan decodes. Each miss
fetches one aligned block (:data:`BLOCK`) with a ranged GET on the store's own client
(its retry and timeout policy), and a few recent blocks are kept, so libav's small
sequential reads cost one request per block and a short jump back costs none.

Imported lazily with :mod:`core.storage.s3` (it needs botocore).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections import OrderedDict

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import StorageError

logger = logging.getLogger(__name__)

BLOCK = 64 * 1024
"""Bytes of one cached block; a ranged GET fetches one or more whole blocks."""
MAX_AHEAD = 32
"""Read-ahead, in blocks, once libav reads on sequentially: it doubles with each request
up to 2 MiB (a 1080p GOP is a few requests, each request costs a round trip); a jump
starts at one block again, so a seek to a GOP costs little beyond the GOP itself."""
KEEP = 48
"""Blocks kept (3 MiB, the bound on what the reader holds): a seek back into a GOP just
read costs no request."""
AVSEEK_SIZE = 0x10000  # libav's "what is the size" whence, should PyAV pass it on


class RangeReadError(StorageError):
    """A ranged read failed or the store does not honour ``Range``: the job falls back
    to downloading the whole video."""


class _File(io.RawIOBase):
    """A read-only, seekable binary file over ``reader`` with its own position."""

    def __init__(self, reader: S3RangeReader) -> None:
        super().__init__()
        self.reader = reader
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        size = self.reader.size
        if whence == AVSEEK_SIZE:
            return size
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        done = self.reader.read_at(self.position, memoryview(buffer).cast("B"))
        self.position += done
        return done

    def view(self) -> _File:
        """Another file on the same object and cache, with its own position: each libav
        container gets one, as two containers on one position would read each other's
        bytes."""
        return _File(self.reader)


class S3RangeReader(_File):
    """One S3 object as a read-only, seekable binary file.

    ``fetched`` and ``requests`` count what came over the network. A failure raises
    :class:`RangeReadError` and is also kept in ``error``, since libav may report it as
    its own read error.
    """

    def __init__(self, store, key: str, *, block: int = BLOCK, keep: int = KEEP,
                 max_ahead: int = MAX_AHEAD) -> None:
        super().__init__(self)
        self.store, self.key = store, key
        self.full_key = store._full(key)
        self.block, self.keep, self.max_ahead = block, keep, max_ahead
        self._ahead = 1
        self._last_miss = -2
        self.fetched = 0
        self.requests = 0  # ranged GETs made
        self.skipped = 0   # bytes handed out as zeros while skipping data
        self._skipping = False
        self.error: RangeReadError | None = None
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        try:
            head = store.client.head_object(Bucket=store.bucket, Key=self.full_key)
        except (ClientError, BotoCoreError) as exc:
            raise store._translate(exc, "read", key) from None
        self.size = int(head["ContentLength"])
        self.etag = head.get("ETag")

    @contextlib.contextmanager
    def skipping_data(self):
        """While inside, reads fetch nothing and give zeros: for a demux pass that needs
        only what the header's index says about each packet (MP4/MOV), not its bytes."""
        self._skipping = True
        try:
            yield self
        finally:
            self._skipping = False

    def read_at(self, position: int, view: memoryview) -> int:
        """Fill ``view`` from ``position`` on; the number of bytes (0 at the end)."""
        want = max(0, min(len(view), self.size - position))
        if self._skipping:
            view[:want] = bytes(want)
            self.skipped += want
            return want
        done = 0
        while done < want:
            number, offset = divmod(position + done, self.block)
            piece = self._block(number)[offset:offset + want - done]
            if not piece:
                break
            view[done:done + len(piece)] = piece
            done += len(piece)
        return done

    # ------------------------------------------------------------------ fetching
    def _block(self, number: int) -> bytes:
        data = self._blocks.get(number)
        if data is not None:
            self._blocks.move_to_end(number)
            return data
        # Reading on from the last miss widens the read-ahead; a jump resets it.
        sequential = number == self._last_miss + 1
        self._ahead = min(self._ahead * 2, self.max_ahead) if sequential else 1
        last_block = (self.size - 1) // self.block
        count = 1
        while count < self._ahead and number + count <= last_block \
                and number + count not in self._blocks:
            count += 1
        first = number * self.block
        run = self._get(first, min((number + count) * self.block, self.size) - 1)
        for k in range(count):
            self._blocks[number + k] = run[k * self.block:(k + 1) * self.block]
        self._last_miss = number + count - 1
        while len(self._blocks) > self.keep:
            self._blocks.popitem(last=False)
        return self._blocks[number]

    def _get(self, first: int, last: int) -> bytes:
        where = f"s3://{self.store.bucket}/{self.full_key}"
        try:
            args = {"Bucket": self.store.bucket, "Key": self.full_key,
                    "Range": f"bytes={first}-{last}"}
            if self.etag:  # the object replaced under us is a failure, not mixed bytes
                args["IfMatch"] = self.etag
            self.requests += 1
            response = self.store.client.get_object(**args)
            body = response["Body"]
            try:
                if not response.get("ContentRange"):
                    raise self._fail(f"the store ignored the byte range reading {where} "
                                     "(answered with the whole object)")
                data = body.read()
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            error = self.store._translate(exc, "read", self.key)
            raise self._fail(f"ranged read of bytes {first}-{last} failed: {error}") from None
        if len(data) != last - first + 1:
            raise self._fail(f"ranged read of bytes {first}-{last} of {where} returned "
                             f"{len(data)} bytes")
        self.fetched += len(data)
        return data

    def _fail(self, message: str) -> RangeReadError:
        self.error = RangeReadError(message, bucket=self.store.bucket, key=self.key,
                                    transient=True)
        return self.error
