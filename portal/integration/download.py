"""Plain file downloads (the ``downloadUrl`` of pushed invoices): checked, pinned, capped, bounded."""

from __future__ import annotations

from collections.abc import Callable
from email.message import Message
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import requests

from .errors import IntegrationError, PolicyRefused, RemoteRefused, RemoteUnavailable
from .http import (DEFAULT_DOWNLOAD_DEADLINE, _USER_AGENT, ReplyTooLarge, Timeout, Watchdog, _host_of,
                   _normalise_timeout, _PinnedAdapter, _resolve, _send, host_allowed, human_size, read_capped)


def _check_download_url(url: str, allowed_hosts: list[str] | None) -> tuple[str, int]:
    """Check scheme, host and allow-list of ``url``; return its ``(host, port)``."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise IntegrationError(f"下载地址格式不正确：{url}") from None
    if parts.scheme not in ("http", "https"):
        raise PolicyRefused("下载地址只支持 http 或 https 协议")
    if not parts.hostname:
        raise IntegrationError(f"下载地址缺少主机名：{url}")
    if allowed_hosts is not None and not host_allowed(url, allowed_hosts):
        raise PolicyRefused(f"下载地址的主机 {parts.hostname} 不在允许的列表中")
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _filename_from(resp: requests.Response, url: str) -> str | None:
    disposition = resp.headers.get("Content-Disposition")
    name = None
    if disposition:
        msg = Message()
        msg["Content-Disposition"] = disposition
        name = msg.get_filename()  # handles RFC 2231 filename*=UTF-8''...
    if not name:
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    # Never trust a remote path: keep only the last component.
    name = PurePosixPath(name.replace("\\", "/")).name if name else ""
    return name or None


def fetch_file(
    url: str,
    *,
    max_bytes: int,
    allowed_hosts: list[str] | None = None,
    timeout: Timeout | None = None,
    deadline: float = DEFAULT_DOWNLOAD_DEADLINE,
    max_redirects: int = 5,
) -> tuple[bytes, str | None]:
    """Download ``url`` and return ``(content, filename or None)``.

    Only http/https. When ``allowed_hosts`` is given the host must match it (see
    :func:`host_allowed`). A host that is not allow-listed must resolve only to public
    addresses: loopback, private, link-local, multicast, unspecified and IPv4-mapped forms
    of those are refused. The host is resolved once and the connection goes to the address
    that was checked. Redirects are followed by hand, at most ``max_redirects``, each target
    checked the same way. The body is refused as soon as it exceeds ``max_bytes`` (declared
    or actual), and ``deadline`` seconds of wall-clock time bound the whole transfer —
    connect, headers and body; a server dripping bytes is cut off when it runs out. Every
    failure raises IntegrationError (RemoteRefused for HTTP 4xx, RemoteUnavailable for
    transport/5xx/timeout).
    """
    timeout = _normalise_timeout(timeout)
    label = "文件服务器"
    adapter = _PinnedAdapter()

    def too_slow(host: str) -> RemoteUnavailable:
        return RemoteUnavailable(f"从{label}（{host}）下载文件超时（整个下载超过 {deadline:g} 秒）")

    current = url
    with requests.Session() as session, Watchdog(adapter, deadline) as dog:
        # No proxy from the environment: it would resolve the name itself and undo the pinning.
        session.trust_env = False
        session.headers["User-Agent"] = _USER_AGENT
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        for hop in range(max_redirects + 1):
            try:
                host, port = _check_download_url(current, allowed_hosts)
                if (host, port) not in adapter.pins:
                    adapter.pins[(host, port)] = _resolve(
                        host, port, check=not (allowed_hosts and host_allowed(current, allowed_hosts)))
            except PolicyRefused as exc:
                if hop:
                    raise PolicyRefused(f"下载地址被重定向到 {urlsplit(current).hostname}，{exc.message}") from None
                raise
            remaining = dog.remaining()
            if remaining <= 0 or dog.expired:
                raise too_slow(_host_of(current))
            hop_timeout = (min(timeout[0], remaining), min(timeout[1], remaining))
            try:
                resp = _send(session, "GET", current, label=label, timeout=hop_timeout, stream=True,
                             allow_redirects=False)
            except RemoteUnavailable:
                if dog.expired:
                    raise too_slow(_host_of(current)) from None
                raise
            with resp:
                if resp.is_redirect:
                    current = urljoin(current, resp.headers.get("Location", ""))
                    continue
                return _read_body(resp, current, label, max_bytes, dog, too_slow)
        raise IntegrationError(f"下载地址重定向次数过多（超过 {max_redirects} 次）")


def _read_body(resp: requests.Response, url: str, label: str, max_bytes: int, dog: Watchdog,
               too_slow: Callable[[str], RemoteUnavailable]) -> tuple[bytes, str | None]:
    """Read a final (non-redirect) download answer within the size cap; see :func:`fetch_file`."""
    host = _host_of(url)
    if resp.status_code >= 500:
        raise RemoteUnavailable(f"{label}（{host}）返回 HTTP {resp.status_code} 错误", unreachable=False)
    if resp.status_code >= 400:
        raise RemoteRefused(f"下载文件失败：{label}（{host}）返回 HTTP {resp.status_code}", code=resp.status_code)
    try:
        body = read_capped(resp, max_bytes)
    except ReplyTooLarge as exc:
        if exc.declared is not None:
            raise IntegrationError(f"文件大小 {human_size(exc.declared)} 超过上限 {human_size(max_bytes)}，已拒绝下载") from None
        raise IntegrationError(f"文件超过大小上限 {human_size(max_bytes)}，已停止下载") from None
    except (requests.exceptions.RequestException, OSError) as exc:
        # Read timeouts while streaming surface as ConnectionError in requests; a cut socket may
        # also surface as a bare OSError from below.
        if dog.expired:
            raise too_slow(host) from exc
        raise RemoteUnavailable(f"从{label}（{host}）下载文件时连接中断或超时") from exc
    if dog.expired:
        # The watchdog cut the connection: what arrived may look complete but is not to be trusted.
        raise too_slow(host)
    return body, _filename_from(resp, url)
