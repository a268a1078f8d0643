"""Galaxy docking connection form."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from ...crypto import is_masked
from ...forms import SecretInput

_strip = [lambda v: v.strip() if isinstance(v, str) else v]


class DockingForm(FlaskForm):
    name = StringField("连接名称", validators=[DataRequired("请输入连接名称"), Length(max=100, message="连接名称不能超过 100 个字符")], filters=_strip)
    base_url = StringField("前缀地址", validators=[DataRequired("请输入星空的前缀地址"), Length(max=300, message="前缀地址过长")], filters=_strip)
    acct_id = StringField("星空数据库ID", validators=[DataRequired("请选择或输入数据中心 ID（点击“获取数据中心”）"), Length(max=64, message="数据中心 ID 过长")], filters=_strip)
    username = StringField("用户名", validators=[DataRequired("请输入星空用户名"), Length(max=100, message="用户名过长")], filters=_strip)
    password = PasswordField("密码", widget=SecretInput(), validators=[Length(max=128, message="密码过长")])
    status_field = StringField("影像状态字段（可选）", validators=[Optional(), Length(max=64),
                               Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", message="字段标识只能包含字母、数字和下划线")], filters=_strip)
    form_ids = StringField("单据类型（form_ids）", default="ER_ExpReimbursement", validators=[
        DataRequired("请输入至少一个单据类型，例如 ER_ExpReimbursement"), Length(max=300, message="单据类型过长"),
        Regexp(r"^[A-Za-z_][A-Za-z0-9_]*(\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*$",
               message="单据类型是星空的表单标识，多个用英文逗号分隔，例如 ER_ExpReimbursement,ER_ExpReimbursement_Travel")],
        filters=_strip)
    amount_field = StringField("金额字段", default="FExpenseAmount", validators=[
        DataRequired("请输入单据的金额字段，例如 FExpenseAmount"), Length(max=64, message="金额字段过长"),
        Regexp(r"^[A-Za-z_][A-Za-z0-9_.]*$", message="金额字段只能包含字母、数字、下划线和点")], filters=_strip)
    enterprise_id = SelectField("所属企业", coerce=int, choices=[], validate_choice=True)

    editing = False
    #: Set by the view when editing: may the stored password go to the form's address, data
    #: centre and user? The rule lives in the docking service.
    password_reusable = None
    retype_message = ""

    def validate_base_url(self, field) -> None:
        parts = urlsplit(field.data or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError("前缀地址应以 http:// 或 https:// 开头，例如 http://erp.example.com/k3cloud/")

    def validate_password(self, field) -> None:
        if self.editing and is_masked(field.data):
            if self.password_reusable is not None and not self.password_reusable(self):
                raise ValidationError(self.retype_message)
            return
        if not field.data:
            raise ValidationError("请输入星空密码")
