"""User management forms."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from ...forms import choices
from ...labels import ROLES

_strip = [lambda v: v.strip() if isinstance(v, str) else v]
MIN_PASSWORD = 8


class CheckboxListField(SelectMultipleField):
    """A multi-choice shown as a list of checkboxes: a click picks one, nobody needs Ctrl."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class UserForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名"), Length(max=64, message="用户名不能超过 64 个字符"),
                                              Regexp(r"^[A-Za-z0-9_.@-]+$", message="用户名只能包含字母、数字和 _.@-")], filters=_strip)
    display_name = StringField("姓名", validators=[Optional(), Length(max=64, message="姓名不能超过 64 个字符")], filters=_strip)
    role = SelectField("角色", choices=choices(ROLES.items()))
    password = PasswordField("初始密码", validators=[DataRequired("请输入初始密码"),
                                                  Length(min=MIN_PASSWORD, max=128, message=f"密码至少 {MIN_PASSWORD} 位")])
    enterprises = CheckboxListField("所属企业", coerce=int, choices=[])
    scan_points = CheckboxListField("扫描点（扫描岗）", coerce=int, choices=[])


class UserEditForm(FlaskForm):
    display_name = StringField("姓名", validators=[Optional(), Length(max=64, message="姓名不能超过 64 个字符")], filters=_strip)
    role = SelectField("角色", choices=choices(ROLES.items()))
    enterprises = CheckboxListField("所属企业", coerce=int, choices=[])
    scan_points = CheckboxListField("扫描点（扫描岗）", coerce=int, choices=[])
    active = BooleanField("启用")


class PasswordResetForm(FlaskForm):
    password = PasswordField("新密码", validators=[DataRequired("请输入新密码"),
                                                Length(min=MIN_PASSWORD, max=128, message=f"密码至少 {MIN_PASSWORD} 位")])


class OwnPasswordForm(FlaskForm):
    """Change one's own password: the current one proves it is the owner, the new one is typed twice."""

    current = PasswordField("当前密码", validators=[DataRequired("请输入当前密码")])
    password = PasswordField("新密码", validators=[DataRequired("请输入新密码"),
                                                Length(min=MIN_PASSWORD, max=128, message=f"密码至少 {MIN_PASSWORD} 位")])
    confirm = PasswordField("再次输入新密码", validators=[DataRequired("请再次输入新密码"),
                                                     EqualTo("password", message="两次输入的新密码不一致")])
