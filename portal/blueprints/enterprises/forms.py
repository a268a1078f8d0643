"""Enterprise authorization forms."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from ... import taxno
from ...crypto import is_masked
from ...forms import SecretInput
from ...forms import choices
from ...labels import IMAGE_MODES


class EnterpriseForm(FlaskForm):
    """Add form: credentials, image mode and docking connection; the edit form adds the rest."""

    tax_no = StringField("企业税号", validators=[DataRequired("请输入企业税号")], filters=[taxno.normalise])
    name = StringField("企业名称", validators=[DataRequired("请输入企业名称"), Length(max=200, message="企业名称不能超过 200 个字符")],
                       filters=[lambda v: v.strip() if v else v])
    client_id = StringField("client_id（发票云授权标识）", validators=[DataRequired("请输入 client_id"), Length(max=64, message="client_id 不能超过 64 个字符")],
                            filters=[lambda v: v.strip() if v else v])
    client_secret = PasswordField("client_secret（授权密钥）", widget=SecretInput(), validators=[Length(max=128, message="client_secret 不能超过 128 个字符")])
    encrypt_key = PasswordField("encrypt_key（加密密钥）", widget=SecretInput())
    image_mode = RadioField("影像模式", choices=choices(IMAGE_MODES.items()), default="basic",
                            validate_choice=False)
    # Choices are set per request (the connections this user may attach); 0 means none.
    docking_id = SelectField("对接业务系统", coerce=int, choices=[], default=0, validate_choice=False)
    verify_invoices = BooleanField("发票查验")

    # On edit a blank or masked secret keeps the stored one; on add it is required.
    editing = False

    def validate_tax_no(self, field) -> None:
        err = taxno.validate(field.data or "")
        if err:
            raise ValidationError(err)

    def validate_client_secret(self, field) -> None:
        if not self.editing and not field.data:
            raise ValidationError("请输入 client_secret")
        if self.editing and is_masked(field.data):
            return
        if field.data and field.data != field.data.strip():
            raise ValidationError("client_secret 首尾不能有空格")

    def validate_image_mode(self, field) -> None:
        if field.data not in IMAGE_MODES:
            raise ValidationError("请选择影像模式")

    def validate_docking_id(self, field) -> None:
        # Only what the view offered: a bound ops may not attach a connection shared beyond
        # its own enterprises (DESIGN §10), whatever id the request carries.
        if field.data not in {c.value for c in field.choices}:
            raise ValidationError("不能选择该对接业务系统：它不存在，或还服务于您管理范围以外的企业")

    def validate_encrypt_key(self, field) -> None:
        if self.editing and is_masked(field.data):
            return
        if not field.data:
            raise ValidationError("请输入 encrypt_key")
        if len(field.data) != 16:
            raise ValidationError(f"encrypt_key 必须为 16 个字符（当前 {len(field.data)} 个）")


class EnterpriseEditForm(EnterpriseForm):
    editing = True
    encrypted_push_only = BooleanField("只接受加密推送")
    erp_orgs = StringField("ERP 组织编码", filters=[lambda v: ",".join(o.strip() for o in v.split(",") if o.strip()) if v else ""],
                           validators=[Length(max=300, message="组织编码过长（最多 300 个字符）"),
                                       Regexp(r"^[\w.\-]*(,[\w.\-]+)*$",
                                              message="组织编码只能包含字母、数字、下划线、点和短横线，多个用英文逗号分隔")])
    reject_on_return = BooleanField("退回重扫时在星空驳回")
    confirm_needs_second = BooleanField("人工确认需他人复核")
