"""A tiny real HTTP/1.1 site on 127.0.0.1 for the asset cache tests: routes a test can change.

Each answer closes its connection. A route is ``(status, headers, body)`` or a coroutine
function that writes the answer itself (slow or endless bodies); ``requests`` lists the paths
asked, in order, so a test can tell what the fetcher did and did not reach.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

import attrs
import trio

Answer: TypeAlias = tuple[int, dict[str, str], bytes]
Writer: TypeAlias = Callable[[trio.SocketStream], Awaitable[None]]


@attrs.define
class AssetSite:
    routes: dict[str, Answer | Writer] = attrs.field(factory=dict)
    requests: list[str] = attrs.field(factory=list)
    port: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        async with stream:
            head = b""
            with trio.move_on_after(5):
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return
                    head += chunk
            lines = head.split(b"\r\n")
            parts = lines[0].decode("latin-1").split(" ")
            path = parts[1] if len(parts) > 1 else "/"
            self.requests.append(path)
            route = self.routes.get(path)
            if route is None:
                route = (404, {"Content-Type": "text/plain"}, b"not found")
            if callable(route):
                await route(stream)
                return
            status, headers, body = route
            header_lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            if "Content-Length" not in headers:
                header_lines += f"Content-Length: {len(body)}\r\n"
            await stream.send_all(
                f"HTTP/1.1 {status} X\r\n{header_lines}Connection: close\r\n\r\n".encode() + body
            )

    async def run(
        self, *, task_status: trio.TaskStatus[AssetSite] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._serve_one, listeners)
            task_status.started(self)
