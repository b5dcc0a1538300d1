"""Web-facing hardening: security headers on every response, bounded request bodies and headers.

`HardenedApp` is FastAPI with two ASGI layers outside everything else, Starlette's own
`ServerErrorMiddleware` included, so that even its 500 carries the headers:

- `SecurityHeaders` adds the headers to each response as it starts and passes the body through
  untouched, so the streamed BIDS zip and file downloads stay streamed. A response that sets a
  header itself keeps its own value. Responses are not to be stored by any cache
  (`Cache-Control: no-store`, unless a route says otherwise, as file downloads do with an ETag
  to revalidate): whether a subject may be seen is decided again on every request, and a
  withdrawal of consent must take effect on the very next one.
- `RequestLimits` answers 431 to a header section over `MAX_HEADER_BYTES`, and 413 to a body
  over `MAX_BODY_BYTES` on every route but the uploads (`UPLOADS`), whose bodies are files of
  any size streamed to disk. A declared `Content-Length` is refused before anything is read; a
  chunked body is counted while it is read, and refused once it grows past the limit.

URLs are not checked here: uvicorn already answers 400 to one it cannot hold (httptools, the
parser it uses when installed, refuses URLs over 64 KiB; h11 bounds the request line and
headers together). httptools does not bound the header section, hence the 431.

The docs page (Swagger UI) loads its script and stylesheet from a CDN and starts itself with an
inline script; it gets a policy of its own allowing exactly the origins it loads from, the hash
of that inline script and inline styles (Swagger UI sets them), nothing more. Every other
response gets `STRICT_CSP`, the OAuth2 redirect page of the docs too: no OAuth2 flow is
offered, so its inline script has nothing to do.
"""

import base64
import hashlib
from collections.abc import Callable
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from neurodepot.api.v1.hierarchy import PROJECT, SCAN, SESSION, SUBJECT

MAX_BODY_BYTES = 1 << 20
MAX_HEADER_BYTES = 64 << 10
STRICT_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
CACHE_CONTROL = "no-store"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Sent only over https (browsers ignore it over http). Behind a TLS-terminating proxy, uvicorn
# takes the scheme from the `X-Forwarded-Proto` of a proxy it trusts (`--forwarded-allow-ips`).
# No `includeSubDomains`: other hosts of the centre's domain may still be served over http.
HSTS = "max-age=31536000"
# Routes whose body is a file, streamed as it arrives (to disk, or parsed line by line).
UPLOADS = (
    *(
        ("PUT", f"/api/v1{level}/resources/{{resource}}/files/{{path:path}}")
        for level in (PROJECT, SUBJECT, SESSION, SCAN)
    ),
    ("POST", f"/api/v1{PROJECT}/import"),
    # A centre's consent spreadsheet: the route itself stops reading at its own limit (10 MB).
    ("POST", f"/api/v1{PROJECT}/consent/import"),
)
_UPLOAD_PATTERNS = [(method, compile_path(template)[0]) for method, template in UPLOADS]


def is_upload(method: str, path: str) -> bool:
    """Whether `method path` is one of the `UPLOADS`, whose body size is not limited."""
    return any(method == m and pattern.fullmatch(path) for m, pattern in _UPLOAD_PATTERNS)


def header_bytes(scope: Scope) -> int:
    """The size of the request's header section as sent: `name: value` and CRLF per field."""
    return sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _error(status: int, error: str, message: str) -> JSONResponse:
    """The app's error shape (see `exception_handlers`), for answers given before routing."""
    return JSONResponse({"error": error, "message": message}, status_code=status)


def _too_large() -> JSONResponse:
    return _error(
        413,
        "ContentTooLarge",
        f"the request body is over {MAX_BODY_BYTES // (1 << 20)} MiB, the most this route "
        "takes; files are uploaded with PUT …/resources/{resource}/files/{path}",
    )


async def _body_too_large(_request: Request, _exc: Exception) -> JSONResponse:
    return _too_large()


class RequestLimits:
    """413 for a body over `MAX_BODY_BYTES` (uploads excepted), 431 for oversized headers.

    A chunked body is counted by Starlette's `RequestBodyLimitMiddleware`: FastAPI turns what
    it raises into a 413 even through the task group of `BaseHTTPMiddleware` (the request
    log), which turns any other error raised while reading into a 400.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.limited = RequestBodyLimitMiddleware(app, max_body_size=MAX_BODY_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if header_bytes(scope) > MAX_HEADER_BYTES:
            message = f"the request's headers are over {MAX_HEADER_BYTES // 1024} KiB"
            await _error(431, "HeadersTooLarge", message)(scope, receive, send)
            return
        if is_upload(scope["method"], _route_path(scope)):
            await self.app(scope, receive, send)
            return
        # Answered here, before anything is read: Starlette would answer in plain text when
        # the route does not read the body.
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _too_large()(scope, receive, send)
            return
        await self.limited(scope, receive, send)


class SecurityHeaders:
    """Adds the security headers to every HTTP response without touching its body."""

    def __init__(self, app: ASGIApp, policy_for: Callable[[Scope], str]) -> None:
        self.app = app
        self.policy_for = policy_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", self.policy_for(scope))
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Cache-Control", CACHE_CONTROL)
                if scope.get("scheme") == "https":
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _PageAssets(HTMLParser):
    """The origins a page loads scripts, styles and images from, and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: set[str] = set()
        self.styles: set[str] = set()
        self.images: set[str] = set()
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            if named.get("src"):
                self.scripts.add(_origin(named["src"] or ""))
            else:
                self._in_inline_script = True
                self.inline_scripts.append("")
        elif tag == "link" and named.get("href"):
            rel = (named.get("rel") or "").split()
            kinds = self.styles if "stylesheet" in rel else self.images
            kinds.add(_origin(named["href"] or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts[-1] += data


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"


def page_policy(html: str) -> str:
    """A CSP allowing `html` exactly what it loads: its origins and its inline scripts."""
    page = _PageAssets()
    page.feed(html)
    page.close()
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in page.inline_scripts
    ]
    sources = {
        "script-src": ["'self'", *sorted(page.scripts - {"'self'"}), *hashes],
        "style-src": ["'self'", *sorted(page.styles - {"'self'"}), "'unsafe-inline'"],
        "img-src": ["'self'", "data:", *sorted(page.images - {"'self'"})],
    }
    extra = "; ".join(f"{name} {' '.join(values)}" for name, values in sources.items())
    return f"{STRICT_CSP}; {extra}"


class HardenedApp(FastAPI):
    """FastAPI with `SecurityHeaders` and `RequestLimits` outside its whole middleware stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_exception_handler(413, _body_too_large)  # raised only by the body limit
        self._docs_policy = lru_cache(maxsize=8)(self._render_docs_policy)

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(RequestLimits(super().build_middleware_stack()), self.policy_for)

    def policy_for(self, scope: Scope) -> str:
        """The CSP of the response to `scope`: the docs page's own, else `STRICT_CSP`."""
        if self.docs_url is None or _route_path(scope) != self.docs_url:
            return STRICT_CSP
        return self._docs_policy(scope.get("root_path", "").rstrip("/"))

    def _render_docs_policy(self, root_path: str) -> str:
        """The docs page's policy, from the page as FastAPI renders it for this app.

        Rendered from the app's settings rather than read from the response, so that the
        policy never vouches for anything injected into a response.
        """
        assert self.openapi_url is not None
        redirect = self.swagger_ui_oauth2_redirect_url
        page = get_swagger_ui_html(
            openapi_url=root_path + self.openapi_url,
            title=f"{self.title} - Swagger UI",
            oauth2_redirect_url=root_path + redirect if redirect else None,
            init_oauth=self.swagger_ui_init_oauth,
            swagger_ui_parameters=self.swagger_ui_parameters,
        )
        return page_policy(bytes(page.body).decode())
