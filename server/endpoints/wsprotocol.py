"""uvicorn's sans-I/O `websockets` protocol, with two changes Ting needs.

1. Closing a client that stopped reading (4409) must not wait for its send
   buffer to drain, since it never will: the close frame is queued at once
   and the connection is dropped if the peer does not take it in time.
2. On shutdown, clients are told 1001 (going away: resume elsewhere), which
   is what the protocol promises, rather than uvicorn's 1012.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from server.protocol import CLOSE_GOING_AWAY

# How long a stuck peer gets to read its close frame before the TCP
# connection is dropped and its buffers are freed.
STUCK_PEER_TIMEOUT = 10.0


class TingWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            # The hub writes ready-made frames straight to the transport.
            scope["extensions"]["ting.sink"] = self

    def ting_ready(self) -> bool:
        return (
            self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
            and self.writable.is_set()
            and not self.transport.is_closing()
        )

    def ting_write(self, data: bytes) -> None:
        self.transport.write(data)

    async def ting_wait_writable(self) -> None:
        await self.writable.wait()

    async def send(self, message: Any) -> None:
        if (
            message["type"] == "websocket.close"
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
            and not self.writable.is_set()
            and not self.transport.is_closing()
        ):
            code = message.get("code", 1000)
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code})
            self.conn.send_close(code, message.get("reason") or "")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.close_timer = self.loop.call_later(STUCK_PEER_TIMEOUT, self.transport.abort)
            return
        await super().send(message)

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and self.initial_response is None:
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
            self.conn.send_close(CLOSE_GOING_AWAY, "server going away")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
            return
        super().shutdown()
