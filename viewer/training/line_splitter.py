"""Bytes from a child process's pipe -> complete text lines (Qt-free)."""

from __future__ import annotations


class LineSplitter:
    """Bytes as they arrive -> complete text lines; a partial last line waits for the rest.

    Splitting happens on bytes, so a UTF-8 character cut between two reads decodes whole.
    """

    def __init__(self):
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by ``data`` (without their newlines)."""
        lines = (self._pending + bytes(data)).split(b"\n")
        self._pending = lines.pop()
        return [_decode(line) for line in lines]

    def flush(self) -> list[str]:
        """The unterminated last line, if any (the stream has ended)."""
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest.strip() else []


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")
