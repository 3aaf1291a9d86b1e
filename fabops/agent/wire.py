"""The agent's wire format: one frame is a JSON header and an optional
payload of bytes, each length-prefixed, over a Unix stream socket. The
first frame of a connection may carry file descriptors (SCM_RIGHTS): the
client's stdin, stdout and stderr (docs/architecture.md, "The agent").

Standard library only: the client side imports this before anything
heavy, so a command forwarded to the agent starts in milliseconds."""
from __future__ import annotations

import json
import os
import socket
import struct
from typing import List, Optional, Tuple

_HEAD = struct.Struct(">II")  # header length, payload length
_UCRED = struct.Struct("3i")  # pid, uid, gid (SO_PEERCRED)
MAX_HEADER = 1 << 20  # a request carries argv and the environment: far less than this


class WireError(Exception):
    """The peer broke the framing or went away mid-frame."""


def send(sock: socket.socket, header: dict, payload: bytes = b"", fds: Optional[List[int]] = None) -> None:
    head = json.dumps(header, separators=(",", ":")).encode()
    data = _HEAD.pack(len(head), len(payload)) + head + payload
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        data = data[sent:]
    if data:
        sock.sendall(data)


def recv(sock: socket.socket, max_fds: int = 0) -> Tuple[Optional[dict], bytes, List[int]]:
    """One frame: (header, payload, fds); (None, b"", []) at a clean end of
    stream (before a frame starts). WireError on a frame cut short."""
    fds: List[int] = []
    if max_fds:
        first, fds, _flags, _addr = socket.recv_fds(sock, _HEAD.size, max_fds)
        for fd in fds:  # never into a command a run starts
            os.set_inheritable(fd, False)
        if not first:
            return None, b"", fds
        prefix = first + _exactly(sock, _HEAD.size - len(first))
    else:
        prefix = _exactly(sock, _HEAD.size, allow_end=True)
        if not prefix:
            return None, b"", []
    head_len, payload_len = _HEAD.unpack(prefix)
    if head_len > MAX_HEADER:
        raise WireError(f"frame header of {head_len} bytes")
    header = json.loads(_exactly(sock, head_len).decode())
    return header, _exactly(sock, payload_len), fds


def _exactly(sock: socket.socket, n: int, allow_end: bool = False) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            if allow_end and not got:
                return b""
            raise WireError("the peer closed the connection mid-frame")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end, as the kernel saw it connect."""
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return uid
