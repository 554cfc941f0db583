"""Security headers on every HTTP response, computed once per app: nosniff, no framing, no
referrer, a Content-Security-Policy per kind of page, no-store, HSTS when configured."""

from __future__ import annotations

from collections.abc import Mapping

from quart import Quart, Response, request

# JSON APIs load nothing and may not be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# quart-schema's /docs, /redocs and /scalar pages load their UI from these CDNs.
_DOC_CDNS = "https://cdnjs.cloudflare.com https://cdn.jsdelivr.net"
DOCS_CSP = (
    f"default-src 'none'; script-src 'self' 'unsafe-inline' {_DOC_CDNS}; "
    f"style-src 'self' 'unsafe-inline' {_DOC_CDNS} https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com data:; img-src 'self' data: https:; "
    "connect-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'"
)
DOC_PAGES = {"/docs": DOCS_CSP, "/redocs": DOCS_CSP, "/scalar": DOCS_CSP}


def hsts_value(max_age: int) -> str:
    return f"max-age={max_age}; includeSubDomains"


def header_set(csp: str, hsts_max_age: int) -> tuple[tuple[str, str], ...]:
    """The headers one kind of response gets (each only if the view did not set it)."""
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", csp),
        # Bodies are per-user and change with every write: no shared or browser cache.
        ("Cache-Control", "no-store"),
    ]
    if hsts_max_age > 0:
        headers.append(("Strict-Transport-Security", hsts_value(hsts_max_age)))
    return tuple(headers)


def install_secure_headers(
    app: Quart, hsts_max_age: int = 0, page_csp: Mapping[str, str] | None = None
) -> None:
    """Add the header set to every response; `page_csp` maps an HTML page's path to its
    own policy (the API policy forbids everything a page needs)."""
    default = header_set(API_CSP, hsts_max_age)
    by_path = {
        path: header_set(csp, hsts_max_age)
        for path, csp in {**DOC_PAGES, **(page_csp or {})}.items()
    }

    @app.after_request
    async def add_security_headers(response: Response) -> Response:
        headers = response.headers
        # One pass over what the view set, then plain appends: Headers.setdefault scans the
        # list per call and was 3x the cost of the rest of this hook.
        present = {name.lower() for name in headers.keys()}
        for name, value in by_path.get(request.path, default):
            if name.lower() not in present:
                headers.add(name, value)
        return response
