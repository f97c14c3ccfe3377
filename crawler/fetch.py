"""One guarded, polite download outside a crawl (a PDF link named in an issue): no private hosts, capped."""

from __future__ import annotations

import os
import re
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


def _connect_public(host: str, port: int, timeout: object, source_address: object,
                    socket_options: object, blocked: list[str]) -> socket.socket:
    """A socket to `host` connected only to an address that was checked to be public.

    The name is resolved once, here; every address must be public, and the socket connects to
    one of those very addresses (its peer checked again), so a DNS answer that changes between
    a check and the connection (rebinding) cannot reach a private address."""
    from urllib3.util.connection import _set_socket_options  # noqa: PLC0415
    from urllib3.util.timeout import _DEFAULT_TIMEOUT  # noqa: PLC0415

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    private = sorted({i[4][0] for i in infos if not is_public_address(i[4][0])})
    if private:
        blocked.append(f"{host} resolves to private address {private[0]}")
        raise OSError(blocked[-1])
    error: OSError | None = None
    refused = len(blocked)
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            _set_socket_options(sock, socket_options)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)  # type: ignore[arg-type]
            if source_address:
                sock.bind(source_address)  # type: ignore[arg-type]
            sock.connect(address)
            peer = sock.getpeername()[0]
            if not is_public_address(peer):
                blocked.append(f"{host} connected to private address {peer}")
                raise OSError(blocked[-1])
            return sock
        except OSError as exc:
            sock.close()
            error = exc
            if len(blocked) > refused:
                break
    raise error or OSError(f"cannot connect to {host}")


def _guarded_session(allowed: set[str], blocked: list[str]) -> object:
    """A requests session whose every connection (robots.txt, redirects, the file) goes through
    `_connect_public`, with the URL's own Host header and TLS server name; hosts in `allowed`
    connect as usual. No proxy from the environment (the checked address must be the peer)."""
    import requests  # noqa: PLC0415
    from requests.adapters import HTTPAdapter  # noqa: PLC0415
    from urllib3.connection import HTTPConnection, HTTPSConnection  # noqa: PLC0415
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool  # noqa: PLC0415

    def new_conn(self: HTTPConnection) -> socket.socket:
        if self._dns_host.lower() in allowed:
            return HTTPConnection._new_conn(self)
        try:
            return _connect_public(self._dns_host, self.port, self.timeout, self.source_address,
                                   self.socket_options, blocked)
        except OSError as exc:
            from urllib3.exceptions import NewConnectionError  # noqa: PLC0415

            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc

    http_conn = type("GuardedHTTPConnection", (HTTPConnection,), {"_new_conn": new_conn})
    https_conn = type("GuardedHTTPSConnection", (HTTPSConnection,), {"_new_conn": new_conn})
    pools = {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: object, **kwargs: object) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

    session = requests.Session()
    session.trust_env = False  # no environment proxies: the checked address is the one used
    # ... but the CA bundle a site configures for requests still applies
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") \
        or True
    for scheme in ("http://", "https://"):
        session.mount(scheme, GuardedAdapter())
    return session


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

    allowed = {host.lower() for host in allowed or set()}
    agent = user_agent(contact)
    blocked: list[str] = []  # why a connection was refused, said instead of "ConnectionError"
    with _guarded_session(allowed, blocked) as session:
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
                if blocked:
                    raise FetchError(f"refused {current[:200]}: {blocked[-1]}") from None
                why = type(exc).__name__
                if isinstance(exc, requests.exceptions.SSLError):
                    detail = re.search(r"certificate verify failed[^'\")]*|hostname \S+ doesn't match[^'\")]*",
                                       str(exc))
                    why = f"TLS: {detail.group(0).strip()}" if detail else "TLS error"
                raise FetchError(f"{current[:200]}: {why}") from None
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
