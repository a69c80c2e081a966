"""Free TCP ports on the loopback interface for the engine's listeners."""

from __future__ import annotations

import socket
from collections.abc import Collection


def free_ports(count: int, host: str = "127.0.0.1", exclude: Collection[int] = ()) -> list[int]:
    """``count`` distinct ports free right now, none of them in ``exclude``.

    Every socket stays open until all are chosen, an excluded one too, so the kernel cannot hand
    the same port out twice. ``exclude`` holds ports that are free now but taken soon: the worker
    binds its own port only after the engine has started on its ports.
    """
    socks: list[socket.socket] = []
    chosen: list[int] = []
    try:
        while len(chosen) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
            port = s.getsockname()[1]
            if port not in exclude:
                chosen.append(port)
        return chosen
    finally:
        for s in socks:
            s.close()
