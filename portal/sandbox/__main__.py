"""Run both emulators in the foreground: ``python -m portal.sandbox [--seed demo]``.

Used by ``make demo``; stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from portal.sandbox.galaxy import GalaxySandbox
from portal.sandbox.invoice_cloud import CloudSandbox
from portal.sandbox.seed import DEMO_CLOUD_CLIENTS, DEMO_GALAXY, SEEDS, TEST_CLOUD_CLIENTS, TEST_GALAXY


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m portal.sandbox",
                                     description="星空 WebAPI 与发票云的沙箱模拟服务（仅供测试与演示）")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback only)")
    parser.add_argument("--galaxy-port", type=int, default=8701)
    parser.add_argument("--cloud-port", type=int, default=8702)
    parser.add_argument("--seed", choices=sorted(SEEDS), default=None, help="preload named demo/test data")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def _describe(galaxy: GalaxySandbox, cloud: CloudSandbox, seed: str | None) -> str:
    lines = [
        f"星空沙箱   {galaxy.base_url}",
        f"发票云沙箱 {cloud.url}",
    ]
    galaxy_seed, cloud_seeds = {"demo": (DEMO_GALAXY, DEMO_CLOUD_CLIENTS),
                                "test": (TEST_GALAXY, TEST_CLOUD_CLIENTS)}.get(seed, (None, ()))
    if galaxy_seed is not None:
        lines += [
            f"  数据中心 {galaxy_seed.acct_id}  {galaxy_seed.acct_name}",
            f"  WebAPI 用户 {galaxy_seed.username} / 密码 {galaxy_seed.password}",
            f"  未加入 WebAPI 白名单的用户 {galaxy_seed.no_webapi_username} / 密码 {galaxy_seed.password}",
            f"  单据 {galaxy_seed.form_id}: " + ", ".join(f"{b['number']}(FID {b['id']})" for b in galaxy_seed.bills),
        ]
    for client in cloud_seeds:
        lines.append(
            f"  发票云 {client.name}  税号 {client.tax_no}  client_id {client.client_id}  "
            f"client_secret {client.client_secret}  encrypt_key {client.encrypt_key}"
        )
    lines.append("以上均为演示数据，不是真实凭据。按 Ctrl-C 停止。")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start both emulators and block until interrupted."""
    args = _parse_args(argv)
    galaxy_seed, cloud_seed = SEEDS[args.seed] if args.seed else (None, None)
    galaxy = GalaxySandbox(host=args.host, port=args.galaxy_port, seed=galaxy_seed, quiet=not args.verbose)
    cloud = CloudSandbox(host=args.host, port=args.cloud_port, seed=cloud_seed, quiet=not args.verbose)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        galaxy.start()
        cloud.start()
        print(_describe(galaxy, cloud, args.seed), flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"沙箱启动失败：{exc}", file=sys.stderr)
        return 1
    finally:
        cloud.stop()
        galaxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
