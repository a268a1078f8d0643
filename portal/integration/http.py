"""Outbound transport: timeouts and budgets, one request with errors translated, JSON replies,
host allow-lists, and connections pinned to an address checked once (no DNS rebinding).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions
import urllib3.util.connection

from .errors import IntegrationError, PolicyRefused, RemoteUnavailable

#: Seconds to wait for the TCP connect and for each read. Connect is short because a
#: host that does not answer SYN in 5 s is down; read is generous because Galaxy's Save
#: and attachment calls on a busy ERP take seconds.
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_TIMEOUT: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)

#: Upper bound on the whole of one file download, on top of the per-read timeout,
#: so a server dripping one byte every few seconds cannot hold a worker forever.
DEFAULT_DOWNLOAD_DEADLINE = 120.0

#: Upper bound on one whole invoice verification call (查验), and on the size of its answer.
DEFAULT_CHECK_DEADLINE = 30.0
MAX_CHECK_REPLY = 1024 * 1024

#: Largest Galaxy reply read, as received and again once unpacked (gzip, base64 of gzip); the
#: deployment sets it as ``ERP_MAX_REPLY_BYTES``.
DEFAULT_GALAXY_MAX_REPLY = 32 * 1024 * 1024

_USER_AGENT = "portal-invoice-image/0.1 (+python-requests)"

Timeout = float | tuple[float, float]


def timeout_from_config(config: Mapping[str, Any]) -> tuple[float, float]:
    """Read ``OUTBOUND_CONNECT_TIMEOUT`` / ``OUTBOUND_READ_TIMEOUT`` from an app config.

    Missing keys fall back to the module defaults; pass the result as ``timeout=``.
    """
    return (
        float(config.get("OUTBOUND_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)),
        float(config.get("OUTBOUND_READ_TIMEOUT", DEFAULT_READ_TIMEOUT)),
    )


def allowed_hosts_from_config(config: Mapping[str, Any], key: str) -> list[str] | None:
    """Read a comma-separated host allow-list (e.g. ``ERP_ALLOWED_HOSTS``); empty → None (any host).

    Entries follow :func:`host_allowed`: ``host``, ``host:port`` or ``*.suffix``.
    """
    hosts = [h.strip() for h in str(config.get(key) or "").split(",") if h.strip()]
    return hosts or None


def _normalise_timeout(timeout: Timeout | None) -> tuple[float, float]:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, (int, float)):
        return (float(timeout), float(timeout))
    connect, read = timeout
    return (float(connect), float(read))



def _host_of(url: str) -> str:
    # Host and port only: credentials written into an address never reach a message.
    try:
        return urlsplit(url).netloc.rpartition("@")[2] or url
    except ValueError:
        return url


def _send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    label: str,
    timeout: tuple[float, float],
    **kwargs: Any,
) -> requests.Response:
    """Send one request and translate transport failures into the exception family."""
    with transport_errors(label, url, timeout):
        return session.request(method, url, timeout=timeout, **kwargs)


@contextlib.contextmanager
def transport_errors(label: str, url: str, timeout: tuple[float, float]) -> Iterator[None]:
    """Translate a transport failure inside the block (sending, or reading a streamed body)."""
    host = _host_of(url)
    try:
        yield
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL) as exc:
        raise IntegrationError(f"{label}地址格式不正确：{url}") from exc
    except requests.exceptions.ConnectTimeout as exc:
        raise RemoteUnavailable(f"连接{label}（{host}）超时（超过 {timeout[0]:g} 秒）") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise RemoteUnavailable(f"{label}（{host}）响应超时（超过 {timeout[1]:g} 秒）") from exc
    except requests.exceptions.SSLError as exc:
        raise RemoteUnavailable(f"与{label}（{host}）建立 HTTPS 连接失败，请检查证书") from exc
    except requests.exceptions.ConnectionError as exc:
        raise RemoteUnavailable(f"无法连接到{label}（{host}），请检查地址和网络") from exc
    except requests.exceptions.RequestException as exc:
        raise RemoteUnavailable(f"请求{label}（{host}）失败：{type(exc).__name__}") from exc


def human_size(n: int) -> str:
    """A byte count as people read it: ``1.5 MB``, ``12.0 KB``, ``300 字节``."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} 字节"


class ReplyTooLarge(Exception):
    """An answer grew past its cap while being read or unpacked (callers word the refusal).

    ``declared`` is the size its ``Content-Length`` announced when that alone was too large (nothing read).
    """

    def __init__(self, declared: int | None = None):
        super().__init__(declared)
        self.declared = declared


class Watchdog:
    """A deadline for a whole call: when ``seconds`` have passed, every connection of ``adapter`` is shut down.

    Per-read timeouts do not bound a server that drips a byte now and then; this does, by waking the
    blocked read. Use as ``with Watchdog(adapter, seconds) as dog:``; afterwards ``dog.expired`` says
    whether it fired (what was read by then is not to be trusted), ``dog.remaining()`` what is left.
    """

    def __init__(self, adapter: _PinnedAdapter, seconds: float):
        self.adapter = adapter
        self.ends_at = time.monotonic() + seconds
        self._fired = threading.Event()
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self._fired.set()
        self.adapter.cut()

    @property
    def expired(self) -> bool:
        return self._fired.is_set()

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def read_capped(resp: requests.Response, max_bytes: int, *, chunk_size: int = 64 * 1024) -> bytes:
    """The body of a ``stream=True`` answer, raising :class:`ReplyTooLarge` past ``max_bytes``.

    A declared ``Content-Length`` above the cap is refused before reading; a ``Content-Encoding``
    is undone chunk by chunk (urllib3 inflates at most one chunk's worth per read), so the cap
    holds for the decoded bytes too.
    """
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ReplyTooLarge(int(declared))
    body = bytearray()
    for chunk in resp.iter_content(chunk_size=chunk_size):
        body += chunk
        if len(body) > max_bytes:
            raise ReplyTooLarge()
    return bytes(body)


def gunzip_capped(data: bytes, max_bytes: int) -> bytes:
    """``gzip.decompress`` that stops at ``max_bytes`` of output (:class:`ReplyTooLarge`).

    Like ``gzip.decompress`` it joins concatenated members and raises ``EOFError`` on a
    truncated stream; a corrupt one raises ``zlib.error``.
    """
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += inflater.decompress(data, max_bytes + 1 - len(out))
        if len(out) > max_bytes:
            raise ReplyTooLarge()
        if not inflater.eof:
            if inflater.unconsumed_tail:  # output budget spent with input left over
                raise ReplyTooLarge()
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        data = inflater.unused_data.lstrip(b"\x00")  # gzip pads members with zeros
    return bytes(out)


def _parse_json_bytes(content: bytes) -> Any:
    # .NET servers sometimes prefix a BOM; utf-8-sig strips it when present.
    return json.loads(content.decode("utf-8-sig"))


def _remote_words(body: Any) -> tuple[str | None, Any]:
    """Pick the human message and code out of an error body, whatever its dialect."""
    if not isinstance(body, dict):
        return None, None
    message = (
        body.get("description_cn")
        or body.get("description")
        or body.get("Message")
        or body.get("message")
    )
    code = body.get("errcode", body.get("MsgCode", body.get("code")))
    return (str(message) if message else None), code


def _reject_server_error(resp: requests.Response, label: str, body: Any = None) -> None:
    if resp.status_code >= 500:
        message, code = _remote_words(body)
        text = f"{label}（{_host_of(resp.url)}）返回 HTTP {resp.status_code} 错误"
        if message:
            text = f"{text}：{message}"
        raise RemoteUnavailable(text, code=code, unreachable=False)


def _not_json(resp: requests.Response, label: str) -> RemoteUnavailable:
    return RemoteUnavailable(
        f"{label}（{_host_of(resp.url)}）返回的内容不是有效的 JSON（HTTP {resp.status_code}），"
        "请检查地址是否正确",
        unreachable=False,
    )


def _json_reply(resp: requests.Response, label: str) -> Any:
    """Parse a JSON reply; 5xx and non-JSON become RemoteUnavailable."""
    try:
        body = _parse_json_bytes(resp.content)
    except (UnicodeDecodeError, ValueError):
        body = None
        _reject_server_error(resp, label)
        raise _not_json(resp, label) from None
    _reject_server_error(resp, label, body)
    return body



def _split_host_entry(entry: str) -> tuple[str, int | None] | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    try:
        parts = urlsplit(f"//{entry}")
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


def host_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """True when the URL's host matches an allow-list entry.

    Entries are ``host``, ``host:port`` or ``*.suffix`` (any subdomain of suffix, not the
    suffix itself); hosts compare case-insensitively.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    if not host:
        return False
    for entry in allowed_hosts:
        split = _split_host_entry(entry)
        if split is None:
            continue
        pattern, entry_port = split
        if entry_port is not None and entry_port != port:
            continue
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False



def _public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet: not loopback, private, link-local, multicast...

    IPv4 addresses hidden in IPv6 (``::ffff:a.b.c.d``, the NAT64 prefix, 6to4, Teredo) are judged by
    the IPv4 address they reach, so ``[::ffff:169.254.169.254]`` is link-local like the plain form.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not _public_address(embedded):
            return False
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _resolve(host: str, port: int, check: bool) -> list[str]:
    """Resolve ``host`` once and return the addresses to connect to, in the resolver's order.

    With ``check`` every address the name resolves to must be public: a name that answers one
    public and one private address is refused, since the connection could land on either.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise RemoteUnavailable(f"无法解析文件服务器的主机名 {host}，请检查下载地址") from None
    addresses = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise RemoteUnavailable(f"无法解析文件服务器的主机名 {host}，请检查下载地址")
    if check:
        for text in addresses:
            try:
                ip = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                ip = None
            if ip is None or not _public_address(ip):
                # Loopback, private networks, link-local (cloud metadata services), mapped forms of
                # those and unspecified addresses are our own side of the wall: refused by default.
                raise PolicyRefused(
                    f"下载地址的主机 {host} 指向本机、内网或保留地址（{text}），已拒绝；"
                    "确需从该主机下载时，请把它加入 FETCH_ALLOWED_HOSTS")
    return list(dict.fromkeys(addresses))


class _PinnedConnectionMixin:
    """A urllib3 connection that connects to the address checked before, never to a fresh lookup.

    The URL keeps the host name, so the Host header, TLS SNI and the certificate check all use the
    name; only the TCP connect goes to the pinned address (no DNS rebinding between check and use).
    """

    pinned_addresses: list[str] = []
    on_connect: Any = None

    def _new_conn(self):
        """Open the TCP connection to the first pinned address that answers (urllib3 hook)."""
        if not self.pinned_addresses:
            raise urllib3.exceptions.NewConnectionError(self, "下载地址未经检查，拒绝连接")
        error: OSError | None = None
        for address in self.pinned_addresses:  # e.g. IPv6 first, IPv4 when that does not answer
            try:
                sock = urllib3.util.connection.create_connection(
                    (address, self.port), self.timeout,
                    source_address=self.source_address, socket_options=self.socket_options)
            except socket.timeout as exc:
                raise urllib3.exceptions.ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
            except OSError as exc:
                error = exc
                continue
            if self.on_connect is not None:
                # A second descriptor of the same socket: TLS wrapping detaches this one, and the
                # response may outlive the connection object, but shutting the dup down still cuts
                # the TLS handshake, the headers and the body alike.
                self.on_connect(sock.dup())
            return sock
        raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _PinnedHTTPConnection(_PinnedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    """Transport of one download: connects each ``(host, port)`` only to the address in ``pins``.

    It also keeps a descriptor of every connection it opened, so the deadline watchdog can cut them.
    """

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], list[str]] = {}
        self.sockets: list[socket.socket] = []
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        adapter = self

        def pool_class(base: type, connection_class: type) -> type:
            class Pool(base):
                ConnectionCls = connection_class

                def _new_conn(self):
                    conn = super()._new_conn()
                    conn.pinned_addresses = adapter.pins.get(((self.host or "").lower(), int(self.port or 0)), [])
                    conn.on_connect = adapter.sockets.append
                    return conn

            return Pool

        self.poolmanager.pool_classes_by_scheme = {
            "http": pool_class(urllib3.HTTPConnectionPool, _PinnedHTTPConnection),
            "https": pool_class(urllib3.HTTPSConnectionPool, _PinnedHTTPSConnection),
        }

    def cut(self) -> None:
        """Shut every open connection down, waking a read blocked on a dripping server."""
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close the pools and the watchdog's descriptors."""
        super().close()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
