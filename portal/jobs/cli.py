"""The background commands: ``jobs run [--loop SECONDS]`` (alias ``writeback run``), ``worker``,
``sync run``, ``erp pull`` and ``storage clean``; :func:`portal.cli.register` attaches them."""
from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup

from .. import erp_pull, housekeeping, sync
from ..extensions import db
from ..models import DockingConnection
from . import QUEUE_NAMES, redis_url
from .runner import loop, one_pass

jobs_cli = AppGroup("jobs", help="后台任务：拉取星空待办、同步下载、ERP 回写、存储清理（run）。")
# The command the README used before there was a `jobs` group; it does exactly what `jobs run` does.
writeback_cli = AppGroup("writeback", help="ERP 回写任务（run，与 jobs run 相同）。")


def loop_option(*old_spellings: str):
    """``--loop SECONDS``, the one way every command here repeats: absent or 0 = one round.

    ``old_spellings`` are earlier names of the option that scripts still use (``sync run --every``).
    """
    return click.option("--loop", *old_spellings, "every", type=float, default=None, metavar="SECONDS",
                        help="每隔 SECONDS 秒再运行一轮，直到 Ctrl-C；不写或 0 = 只运行一轮")


def repeat(every: float | None, one_round, *, before_each=None) -> None:
    """Run ``one_round()`` once, or every ``every`` seconds until Ctrl-C (then print 已停止)."""
    try:
        while True:
            if before_each is not None:
                before_each()
            one_round()
            if not every or every <= 0:
                return
            time.sleep(every)
    except KeyboardInterrupt:
        click.echo("已停止")


_LOOP = loop_option()
_LIMIT = click.option("--limit", type=int, default=50, show_default=True, help="每次最多处理的回写任务数")


def _run(every: float | None, limit: int) -> None:
    if not every or every <= 0:
        click.echo(one_pass(limit).summary())
        return
    try:
        loop(every, limit, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("已停止")


@jobs_cli.command("run")
@_LOOP
@_LIMIT
def run_command(every: float | None, limit: int) -> None:
    """Do what is due once (or every SECONDS seconds); with REDIS_URL, queue it for the workers instead."""
    _run(every, limit)


@writeback_cli.command("run")
@_LOOP
@_LIMIT
def writeback_run_command(every: float | None, limit: int) -> None:
    """Alias of ``jobs run``."""
    _run(every, limit)


@click.command("worker")
@click.option("--queues", default=",".join(QUEUE_NAMES), show_default=True,
              help="要处理的队列，逗号分隔（erp、cloud、recognise、housekeeping）")
@click.option("--burst", is_flag=True, help="处理完队列中现有的任务后退出")
def worker_command(queues: str, burst: bool) -> None:
    """Start an RQ worker on the named queues (needs REDIS_URL); each job runs with the app context."""
    if not redis_url():
        raise click.ClickException("未配置 PORTAL_REDIS_URL：没有 Redis 时请用 flask --app portal jobs run --loop 30 运行后台任务")
    names = [n.strip() for n in queues.split(",") if n.strip()]
    unknown = [n for n in names if n not in QUEUE_NAMES]
    if unknown or not names:
        raise click.ClickException(f"未知的队列：{'、'.join(unknown) or '（空）'}；可用：{'、'.join(QUEUE_NAMES)}")
    from .redis_queue import PortalWorker, connect, queues as make_queues

    conn = connect()
    worker = PortalWorker(make_queues(conn, names), connection=conn, app=current_app._get_current_object())
    # The scheduler moves jobs whose retry waits (RQ's backoff) back onto their queue when due.
    worker.work(burst=burst, with_scheduler=True)


sync_cli = AppGroup("sync", help="影像同步提单人：下载推送发票的文件并附到单据（run）。")


@sync_cli.command("run")
@click.option("--limit", default=100, show_default=True, help="每轮最多下载的文件数")
@loop_option("--every")
def sync_run_command(limit: int, every: float | None) -> None:
    """Fetch the pending pushed files once (or every SECONDS seconds until interrupted)."""
    looping = bool(every and every > 0)

    def one_round() -> None:
        click.echo(f"已附加 {sync.fetch_pending(limit)} 个文件")

    # A long-running runner cleans the file store at start-up, then periodically.
    repeat(every, one_round, before_each=housekeeping.clean_if_due if looping else None)


erp_cli = AppGroup("erp", help="从星空工作流拉取待影像审核的单据（pull）。")


@erp_cli.command("pull")
@loop_option()
def pull_command(every: float | None) -> None:
    """Read every connection's pending image tasks once (or every SECONDS seconds) and print what changed."""

    def one_round() -> None:
        for conn_id, result in erp_pull.pull_all().items():
            conn = db.session.get(DockingConnection, conn_id)
            click.echo(f"{conn.name}：待办 {result.tasks}，新开单据 {result.opened}，撤回 {result.withdrawn}，"
                       f"重新打开 {result.reopened}" + (f"；问题：{'；'.join(result.errors)}" if result.errors else ""))

    repeat(every, one_round)


storage_cli = AppGroup("storage", help="文件存储维护（clean）。")


@storage_cli.command("clean")
@click.option("--older-than", type=float, default=None, metavar="SECONDS",
              help="只清理超过 SECONDS 秒未写入的文件（默认取配置 STORAGE_CLEAN_AGE）")
def clean_command(older_than: float | None) -> None:
    """Remove part files of interrupted uploads and stored files no row refers to."""
    done = housekeeping.clean_storage(older_than)
    click.echo(f"已清理 {done.temp_files} 个中断上传的临时文件、{done.orphan_blobs} 个无记录引用的文件")
