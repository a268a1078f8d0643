"""Command-line tools: ``flask --app portal users ...``, ``demo ...``, ``storage clean``."""
from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from .blueprints.users.forms import MIN_PASSWORD
from .blueprints.users.service import create_user as make
from .errors import UserError
from .extensions import db
from .models import Enterprise, Role, ScanPoint, User

users_cli = AppGroup("users", help="管理用户（create / list）。")


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--enterprise", "enterprises", multiple=True, help="绑定的企业税号，可重复")
@click.option("--scan-point", "scan_points", multiple=True, help="扫描点编码（扫描岗），可重复")
@click.option("--display-name", default="")
@click.option("--password-stdin", is_flag=True, help="从标准输入读取密码（一行）")
def create_user(name, role, enterprises, scan_points, display_name, password_stdin):
    """Create a user; an ops user without --enterprise manages every enterprise."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("密码", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"密码至少 {MIN_PASSWORD} 位")
    ents = []
    for tax_no in enterprises:
        ent = db.session.scalar(select(Enterprise).where(Enterprise.tax_no == tax_no.upper()))
        if ent is None:
            raise click.ClickException(f"找不到税号为 {tax_no} 的企业授权")
        ents.append(ent)
    points = []
    for code in scan_points:
        point = db.session.scalar(select(ScanPoint).where(ScanPoint.code == code, ScanPoint.enterprise_id.in_([e.id for e in ents])))
        if point is None:
            raise click.ClickException(f"所选企业下找不到编码为 {code} 的扫描点")
        points.append(point)
    try:
        user = make(name, role, password, display_name=display_name, enterprises=ents, scan_points=points, actor="cli")
    except UserError as exc:
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"已创建用户 {user.username}（{user.role}）")


@users_cli.command("list")
def list_users():
    """List users with role, enterprises and state."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        ents = "全部企业" if user.is_global else ",".join(e.tax_no for e in user.enterprises)
        click.echo(f"{user.username}\t{user.role}\t{'启用' if user.active else '停用'}\t{ents}")


def register(app: Flask) -> None:
    """Attach every command group to ``app``: the one list of ``flask --app portal`` commands."""
    from . import demo
    from .jobs import cli as jobs
    from .serving import serve_command

    for command in (users_cli, demo.demo_cli, jobs.jobs_cli, jobs.writeback_cli, jobs.worker_command, jobs.sync_cli,
                    jobs.erp_cli, jobs.storage_cli, serve_command):
        app.cli.add_command(command)
