"""The upload-size guard of the web app: an ASGI middleware in front of every route."""

from __future__ import annotations


class _TooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: POST bodies above `max_bytes` get `page(413)` and never reach the app.
    The body is drained (up to a bound) before answering, so the browser reads the page
    instead of a connection reset."""

    def __init__(self, app, max_bytes: int, page):
        self.app, self.max_bytes, self.page = app, max_bytes, page

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._drain(receive)
            return await self._reject(scope, send, int(length))
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._drain(receive)
                await self._reject(scope, send, seen)

    async def _drain(self, receive) -> None:
        drained = 0
        while drained < 20 * self.max_bytes:
            message = await receive()
            drained += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    async def _reject(self, scope, send, size: int) -> None:
        async def no_body():
            return {"type": "http.disconnect"}

        await self.page(size)(scope, no_body, send)
