"""One guarded, polite download outside a crawl (a PDF link named in an issue): no private hosts, capped."""

from __future__ import annotations

import socket
import urllib.robotparser
from urllib.parse import urljoin, urlsplit

from crawler.middlewares import BlockedUrl, check_url
from crawler.settings import user_agent
from extract.issuetext import is_public_address

MAX_BYTES = 100 * 1024 * 1024
MAX_REDIRECTS = 5


class FetchError(Exception):
    """The file could not be fetched; the message says why in one line."""


def _check_host(url: str, allowed: set[str]) -> None:
    host = check_url(url, allowed)
    if host in allowed:
        return
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockedUrl(f"refused {url[:200]}: cannot resolve {host} ({exc})") from None
    private = sorted({i[4][0] for i in infos if not is_public_address(i[4][0])})
    if private:
        raise BlockedUrl(f"refused {url[:200]}: {host} resolves to private address {private[0]}")


def _robots_allow(session: object, url: str, agent: str, timeout: float) -> bool:
    parts = urlsplit(url)
    robots = f"{parts.scheme}://{parts.netloc}/robots.txt"
    try:
        response = session.get(robots, timeout=timeout, allow_redirects=False)  # type: ignore[attr-defined]
    except Exception:  # an unreachable robots.txt does not forbid anything
        return True
    if response.status_code != 200:
        return True
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(response.text.splitlines())
    return parser.can_fetch(agent, url)


def fetch_bytes(url: str, contact: str, *, allowed: set[str] | None = None,
                timeout: float = 60.0, max_bytes: int = MAX_BYTES) -> tuple[bytes, str]:
    """(body, final URL) of a GET, following at most 5 redirects, each hop checked before any
    connection: http/https only, no private/loopback/link-local address unless its host is in
    `allowed` (the configured test hosts). robots.txt is obeyed. FetchError otherwise."""
    import requests  # noqa: PLC0415

    allowed = allowed or set()
    agent = user_agent(contact)
    with requests.Session() as session:
        session.headers["User-Agent"] = agent
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                _check_host(current, allowed)
            except BlockedUrl as exc:
                raise FetchError(str(exc)) from None
            if not _robots_allow(session, current, agent, timeout):
                raise FetchError(f"robots.txt of {urlsplit(current).netloc} disallows {current[:200]}")
            try:
                response = session.get(current, timeout=timeout, allow_redirects=False, stream=True)
            except requests.RequestException as exc:
                raise FetchError(f"{current[:200]}: {type(exc).__name__}") from None
            with response:
                if response.is_redirect or response.status_code in (301, 302, 303, 307, 308):
                    current = urljoin(current, response.headers.get("Location", ""))
                    continue
                if response.status_code != 200:
                    raise FetchError(f"{current[:200]}: HTTP {response.status_code}")
                chunks, size = [], 0
                for chunk in response.iter_content(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"{current[:200]}: larger than {max_bytes // 2**20} MB")
                    chunks.append(chunk)
                return b"".join(chunks), current
        raise FetchError(f"{url[:200]}: more than {MAX_REDIRECTS} redirects")
