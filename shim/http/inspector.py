"""``/inspector`` and ``shim serve --record``, wired into the app.

Off unless ``[server] inspector = true`` (the pages) or ``[server.record] dir`` is set
(recording); ``install`` adds nothing otherwise. With ``api_keys`` set the pages ask for a shim
key once (a form; the key is kept in an HttpOnly, SameSite=Strict cookie) or take a bearer
header. "Save as case" writes the exchange as a case folder (``Recorder.save``) that
``shim fixtures check`` can replay. The pages themselves are ``shim/fixtures/pages.py``.
"""

from __future__ import annotations

import hmac
import html
from typing import Any, cast

import anyio.to_thread
from litestar import Litestar, Request, Response, get, post

from shim.fixtures import pages
from shim.fixtures.capture import RecordingMiddleware, tap_upstream
from shim.fixtures.casefile import NotACase
from shim.fixtures.recorder import Recorder
from shim.http.state import app_state
from shim.upstream.client import UpstreamClient
from shim.upstream.routing import bearer

__all__ = ["COOKIE", "inspector_handlers", "install"]

COOKIE = "shim_inspector_key"


def _page(text: str, status: int = 200) -> Response[str]:
    return Response(text, status_code=status, media_type="text/html", headers={"cache-control": "no-store"})


def _keys(request: Request[Any, Any, Any]) -> tuple[str, ...]:
    return app_state(request.app).settings.server.api_keys


def _allowed(request: Request[Any, Any, Any]) -> bool:
    keys = _keys(request)
    if not keys:
        return True
    given = bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE) or ""
    return any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)


def _recorder(request: Request[Any, Any, Any]) -> Recorder:
    recorder = app_state(request.app).recorder
    assert recorder is not None, "the inspector's handlers are registered with a recorder"
    return recorder


@get("/inspector", include_in_schema=False)
async def inspector_index(request: Request[Any, Any, Any]) -> Response[str]:
    if not _allowed(request):
        return _page(pages.login_page(), 401)
    return _page(pages.index_page(_recorder(request).recent()))


@post("/inspector/login", include_in_schema=False, status_code=303)
async def inspector_login(request: Request[Any, Any, Any]) -> Response[str]:
    form = await request.form()
    key = str(form.get("key") or "")
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in _keys(request)):
        return _page(pages.login_page("That key is not one of this shim's api_keys."), 401)
    response = Response("", status_code=303, headers={"location": "/inspector"})
    response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/inspector")
    return response


_NOT_FOUND = "<p>No such exchange (the inspector keeps the most recent ones).</p>"


@get("/inspector/{exchange_id:str}", include_in_schema=False)
async def inspector_exchange(request: Request[Any, Any, Any], exchange_id: str) -> Response[str]:
    if not _allowed(request):
        return _page(pages.login_page(), 401)
    x = _recorder(request).find(exchange_id)
    if x is None:
        return _page(pages.document("not found", _NOT_FOUND), 404)
    return _page(pages.exchange_page(x))


@post("/inspector/{exchange_id:str}/save", include_in_schema=False, status_code=200)
async def inspector_save(request: Request[Any, Any, Any], exchange_id: str) -> Response[str]:
    if not _allowed(request):
        return _page(pages.login_page(), 401)
    recorder = _recorder(request)
    x = recorder.find(exchange_id)
    if x is None:
        return _page(pages.document("not found", _NOT_FOUND), 404)
    try:
        path = await anyio.to_thread.run_sync(recorder.save, x)  # disk IO off the event loop
    except NotACase as why:
        return _page(
            pages.document("not a case", f"<p id='not-saved'>Not saved: {html.escape(str(why))}</p>"), 409
        )
    return _page(pages.saved_page(x, path))


inspector_handlers = [inspector_index, inspector_login, inspector_exchange, inspector_save]


def install(app: Litestar, upstream: UpstreamClient) -> None:
    """The recorder's two hooks (the middleware around the app, the upstream client's tap), the
    inspector's pages when they are on, and the last writes at shutdown."""
    state = app_state(app)
    recorder = state.recorder
    if recorder is None:
        return
    app.asgi_handler = cast(Any, RecordingMiddleware(app.asgi_handler, recorder))
    upstream.tap = tap_upstream
    if state.settings.server.inspector:
        for handler in inspector_handlers:
            app.register(handler)

    async def drain() -> None:  # no parameters: Litestar passes the app to a hook that takes any
        await recorder.aclose()

    app.on_shutdown.append(drain)
