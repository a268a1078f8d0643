"""Scan point form."""
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp

_strip = [lambda v: v.strip() if isinstance(v, str) else v]


class EditScanPointForm(FlaskForm):
    """Code and name of an existing scan point (its enterprise never changes: bills and scanners hang on it)."""

    code = StringField("编码", validators=[DataRequired("请输入扫描点编码"), Length(max=32, message="编码不能超过 32 个字符"),
                                          Regexp(r"^[A-Za-z0-9_.-]+$", message="编码只能包含字母、数字、点、下划线和短横线")], filters=_strip)
    name = StringField("名称", validators=[DataRequired("请输入扫描点名称"), Length(max=100, message="名称不能超过 100 个字符")], filters=_strip)


class ScanPointForm(EditScanPointForm):
    """A new scan point: code, name and its enterprise."""

    enterprise_id = SelectField("所属企业", coerce=int, choices=[], validate_choice=True)
