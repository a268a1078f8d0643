"""The invoice cloud (发票云) standard-edition open API: access token and verification (查验)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from portal.signing import sign

from .errors import IntegrationError, RemoteRefused, RemoteUnavailable
from .http import (DEFAULT_CHECK_DEADLINE, MAX_CHECK_REPLY, _USER_AGENT, Timeout, _host_of, _json_reply,
                   _normalise_timeout, _not_json, _parse_json_bytes, _PinnedAdapter, _reject_server_error,
                   _resolve, _send, ReplyTooLarge, Watchdog, read_capped)


class InvoiceCloudClient:
    """Client for the invoice cloud's standard-edition open API: access token and verification (查验)."""

    label = "发票云"

    def __init__(self, base_url: str, timeout: Timeout | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = _normalise_timeout(timeout)

    def fetch_token(self, client_id: str, client_secret: str) -> dict:
        """Obtain an access token; return the reply (``access_token``, ``expires_in``, ...).

        Raises RemoteRefused with the cloud's ``description`` for any errcode other than
        ``"0000"`` (unknown client, bad signature, expired licence), RemoteUnavailable when
        the cloud cannot be reached or answers garbage. Validating an enterprise's
        credentials is exactly this call.
        """
        timestamp = int(time.time() * 1000)
        body = {
            "client_id": client_id,
            "timestamp": timestamp,
            "sign": sign(client_id, client_secret, timestamp, 0),
        }
        url = f"{self.base_url}/base/oauth/token"
        with requests.Session() as session:
            resp = _send(
                session,
                "POST",
                url,
                label=self.label,
                timeout=self.timeout,
                json=body,
                headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
            )
            reply = _json_reply(resp, self.label)
        if not isinstance(reply, dict) or "errcode" not in reply:
            raise RemoteUnavailable(
                f"{self.label}返回了无法识别的令牌应答（HTTP {resp.status_code}）", unreachable=False
            )
        errcode = str(reply.get("errcode"))
        if errcode != "0000":
            description = reply.get("description") or f"{self.label}拒绝了请求（errcode={errcode}）"
            raise RemoteRefused(str(description), code=errcode)
        if not reply.get("access_token"):
            raise RemoteUnavailable(f"{self.label}的应答中缺少 access_token", code=errcode, unreachable=False)
        return reply

    def check_invoice(self, access_token: str, fields: Mapping[str, Any], *,
                      deadline: float = DEFAULT_CHECK_DEADLINE) -> dict:
        """查验: ``POST /m13/bill/invoice/sys/check?access_token=…`` with ``fields``; return the reply.

        The reply is returned whatever its ``errcode`` (what a code means is the caller's rule,
        :mod:`portal.verification`); RemoteUnavailable when the cloud cannot be reached, times out,
        answers 5xx or something that is not a JSON object with an ``errcode``. Besides the
        per-read timeout, ``deadline`` seconds bound the whole call (a cloud dripping its answer is
        cut off), and an answer above :data:`MAX_CHECK_REPLY` bytes is refused.
        """
        url = f"{self.base_url}/m13/bill/invoice/sys/check"
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        adapter = _PinnedAdapter()  # only for its cut(): the cloud's address is the operator's setting
        try:
            adapter.pins[(host, port)] = _resolve(host, port, check=False)
        except RemoteUnavailable:
            raise RemoteUnavailable(f"无法解析{self.label}的主机名 {host}，请检查发票云地址") from None
        too_slow = RemoteUnavailable(f"{self.label}（{_host_of(url)}）查验超时（整个请求超过 {deadline:g} 秒）")
        # The watchdog cuts an open connection; a connect in progress is bounded by its own timeout.
        timeout = (min(self.timeout[0], deadline), self.timeout[1])
        with requests.Session() as session, Watchdog(adapter, deadline) as dog:
            session.trust_env = False
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                resp = _send(session, "POST", url, label=self.label, timeout=timeout, json=dict(fields),
                             params={"access_token": access_token}, stream=True,
                             headers={"User-Agent": _USER_AGENT, "Accept": "application/json"})
                with resp:
                    try:
                        body = read_capped(resp, MAX_CHECK_REPLY, chunk_size=16 * 1024)
                    except ReplyTooLarge:
                        raise RemoteUnavailable(f"{self.label}的查验应答过大，已拒绝", unreachable=False) from None
            except (RemoteUnavailable, requests.exceptions.RequestException, OSError) as exc:
                if dog.expired:
                    raise too_slow from None
                if isinstance(exc, IntegrationError):
                    raise
                raise RemoteUnavailable(f"读取{self.label}（{_host_of(url)}）的查验应答时连接中断或超时") from exc
        if dog.expired:
            raise too_slow
        try:
            reply = _parse_json_bytes(body)
        except (UnicodeDecodeError, ValueError):
            _reject_server_error(resp, self.label)
            raise _not_json(resp, self.label) from None
        _reject_server_error(resp, self.label, reply)
        if not isinstance(reply, dict) or "errcode" not in reply:
            raise RemoteUnavailable(f"{self.label}返回了无法识别的查验应答（HTTP {resp.status_code}）", unreachable=False)
        return reply
