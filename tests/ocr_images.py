"""Paper invoices of every kind a reimbursement desk sees, drawn with a CJK font the way they are printed,
then photographed badly: blurred, tilted a few degrees and JPEG-compressed.

Each ``draw_*`` takes the printed values (so a test can tamper with one) and returns a PIL image; ``photo``
degrades it. The layouts follow the real documents: label/value positions, the ¥ figures, the capitals (大写)
beside the total, the parties' blocks. The font is Debian's Noto CJK (``fonts-noto-cjk``, see the preflight).
"""
from __future__ import annotations

import io
from pathlib import Path

import zxingcpp
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_FILE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
SC = 2  # the Simplified Chinese face in the collection
INK = (30, 30, 30)
FRAME = (150, 80, 40)  # the brown-red print of the form itself

_FONTS: dict[int, ImageFont.FreeTypeFont] = {}


def font(size: int) -> ImageFont.FreeTypeFont:
    if size not in _FONTS:
        _FONTS[size] = ImageFont.truetype(str(FONT_FILE), size, index=SC)
    return _FONTS[size]


class Sheet:
    def __init__(self, width: int, height: int):
        self.image = Image.new("RGB", (width, height), (250, 248, 242))
        self.draw = ImageDraw.Draw(self.image)

    def text(self, x: int, y: int, value: str, size: int = 22, color=INK) -> None:
        self.draw.text((x, y), value, font=font(size), fill=color)

    def box(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self.draw.rectangle((x0, y0, x1, y1), outline=FRAME, width=2)

    def hline(self, x0: int, x1: int, y: int) -> None:
        self.draw.line((x0, y, x1, y), fill=FRAME, width=2)

    def vline(self, x: int, y0: int, y1: int) -> None:
        self.draw.line((x, y0, x, y1), fill=FRAME, width=2)


def photo(image: Image.Image, *, angle: float = 2.5, blur: float = 0.8, quality: int = 60) -> Image.Image:
    """The sheet as a phone or a cheap scanner gives it: soft, tilted, JPEG-compressed."""
    image = image.filter(ImageFilter.GaussianBlur(blur))
    image = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(235, 235, 230))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def qr_image(payload: str, module: int = 4) -> Image.Image:
    """The invoice QR code (GB payload ``01,type,code,number,amount,yyyymmdd,check,crc``) as printed."""
    matrix = memoryview(zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode).to_image(add_quiet_zones=True))
    image = Image.frombytes("L", (matrix.shape[1], matrix.shape[0]), bytes(matrix))
    return image.resize((image.width * module, image.height * module), Image.NEAREST).convert("RGB")


def draw_vat_paper(v: dict) -> Image.Image:
    """增值税专用发票 / 增值税普通发票, the classic multi-part paper form (code, No, 密码区, two party blocks).

    ``v["qr"]``, when given, is printed top left as on ordinary paper invoices since 2017.
    """
    s = Sheet(1500, 920)
    if v.get("qr"):
        s.image.paste(qr_image(v["qr"]), (280, 8))
    s.text(470, 30, v["title"], 40, FRAME)
    s.text(40, 40, v["code"], 28)
    s.text(1140, 40, "No", 28, FRAME)
    s.text(1190, 40, v["number"], 28)
    s.text(1120, 100, "发票代码：" + v["code"], 20)
    s.text(1120, 130, "发票号码：" + v["number"], 20)
    s.text(1120, 160, "开票日期：" + v["date"], 20)
    if v.get("check_code"):
        s.text(40, 160, "校验码：" + v["check_code"], 20)
    s.box(40, 200, 1460, 830)
    s.vline(90, 200, 360)
    s.text(55, 225, "购", 22, FRAME)
    s.text(55, 265, "买", 22, FRAME)
    s.text(55, 305, "方", 22, FRAME)
    s.text(110, 215, "名        称：" + v["buyer_name"], 22)
    s.text(110, 255, "纳税人识别号：" + v["buyer_tax_no"], 22)
    s.text(110, 295, "地 址、电 话：深圳市南山区科技园1号 0755-12345678", 20)
    s.text(110, 325, "开户行及账号：招商银行深圳分行 755912345610101", 20)
    s.vline(900, 200, 360)
    s.text(915, 230, "密", 22, FRAME)
    s.text(915, 300, "码区", 22, FRAME)
    s.text(980, 225, "03*7<+5-1>>9/48<2*+39-0", 18)
    s.text(980, 260, "<5/*1+7>-64<9-3*2>>/08", 18)
    s.hline(40, 1460, 360)
    s.text(80, 370, "货物或应税劳务、服务名称   规格型号   单位   数量   单价      金额      税率   税额", 20, FRAME)
    s.text(80, 410, "*信息技术服务*软件服务费              项      1   " + v["amount"] + "   " + v["amount"] + "   13%   "
           + v["tax"], 20)
    s.hline(40, 1460, 540)
    s.text(150, 552, "合        计", 22, FRAME)
    s.text(930, 552, "￥" + v["amount"], 22)
    s.text(1250, 552, "￥" + v["tax"], 22)
    s.hline(40, 1460, 590)
    s.text(80, 605, "价税合计（大写）", 22, FRAME)
    s.text(340, 605, "ⓧ" + v["words"], 22)
    s.text(1000, 605, "（小写）￥" + v["total"], 22)
    s.hline(40, 1460, 645)
    s.vline(90, 645, 830)
    s.text(55, 665, "销", 22, FRAME)
    s.text(55, 705, "售", 22, FRAME)
    s.text(55, 745, "方", 22, FRAME)
    s.text(110, 660, "名        称：" + v["seller_name"], 22)
    s.text(110, 700, "纳税人识别号：" + v["seller_tax_no"], 22)
    s.text(110, 740, "地 址、电 话：深圳市福田区华强北路2号 0755-87654321", 20)
    s.text(110, 775, "开户行及账号：中国银行深圳分行 7777123456789", 20)
    s.text(80, 850, "收款人：王五      复核：赵六      开票人：李四      销售方：（章）", 20, FRAME)
    return s.image


def draw_digital(v: dict) -> Image.Image:
    """A 数电 invoice printed on paper: 20-digit number, no code, buyer left and seller right."""
    s = Sheet(1500, 900)
    s.text(430, 30, v["title"], 38, FRAME)
    s.text(1060, 40, "发票号码：" + v["number"], 22)
    s.text(1060, 80, "开票日期：" + v["date"], 22)
    s.box(40, 140, 1460, 800)
    s.vline(740, 140, 300)
    s.text(55, 160, "购", 22, FRAME)
    s.text(55, 200, "买", 22, FRAME)
    s.text(55, 240, "方", 22, FRAME)
    s.text(100, 175, "名称：" + v["buyer_name"], 22)
    s.text(100, 235, "统一社会信用代码/纳税人识别号：" + v["buyer_tax_no"], 20)
    s.text(755, 160, "销", 22, FRAME)
    s.text(755, 200, "售", 22, FRAME)
    s.text(755, 240, "方", 22, FRAME)
    s.text(800, 175, "名称：" + v["seller_name"], 22)
    s.text(800, 235, "统一社会信用代码/纳税人识别号：" + v["seller_tax_no"], 20)
    s.hline(40, 1460, 300)
    s.text(80, 315, "项目名称        规格型号   单位   数量   单价        金额        税率/征收率   税额", 20, FRAME)
    s.text(80, 355, "*信息技术服务*技术服务费            次     1     " + v["amount"] + "   " + v["amount"] + "   6%   "
           + v["tax"], 20)
    s.text(150, 560, "合        计", 22, FRAME)
    s.text(880, 560, "¥" + v["amount"], 22)
    s.text(1250, 560, "¥" + v["tax"], 22)
    s.hline(40, 1460, 600)
    s.text(80, 615, "价税合计（大写）", 22, FRAME)
    s.text(340, 615, "ⓧ" + v["words"], 22)
    s.text(1000, 615, "（小写）¥" + v["total"], 22)
    s.hline(40, 1460, 655)
    s.text(80, 680, "备注", 22, FRAME)
    s.text(80, 820, "开票人：李四", 20)
    return s.image


def draw_railway(v: dict) -> Image.Image:
    """电子发票（铁路电子客票）, as printed from 12306."""
    s = Sheet(1400, 860)
    s.text(380, 30, "电子发票（铁路电子客票）", 38, FRAME)
    s.text(60, 110, "发票号码：" + v["number"], 22)
    s.text(900, 110, "开票日期：" + v["date"], 22)
    s.box(40, 160, 1360, 760)
    s.text(140, 200, v["from"], 34)
    s.text(560, 205, v["train"], 30)
    s.text(900, 200, v["to"], 34)
    s.text(140, 270, v["ride"], 22)
    s.text(560, 270, "05车12A号", 22)
    s.text(900, 270, "二等座", 22)
    s.text(140, 330, "票价：", 22)
    s.text(230, 330, "￥" + v["fare"], 26)
    s.text(140, 390, "3301061990****1234 张三", 22)
    s.text(140, 450, "电子客票号：" + v["ticket"], 22)
    s.text(140, 520, "购买方名称：" + v["buyer_name"], 22)
    s.text(140, 570, "统一社会信用代码：" + v["buyer_tax_no"], 22)
    s.text(140, 680, "仅供报销使用", 20)
    return s.image


def draw_air(v: dict) -> Image.Image:
    """电子发票（航空运输电子客票行程单）: flights, then a row of fare labels over their CNY figures."""
    s = Sheet(1500, 900)
    s.text(400, 30, v.get("title", "电子发票（航空运输电子客票行程单）"), 36, FRAME)
    if v.get("number"):  # the older itinerary has no invoice number, only its e-ticket number
        s.text(60, 110, "发票号码：" + v["number"], 22)
    s.text(900, 110, "填开日期：" + v["date"], 22)
    s.text(60, 160, "旅客姓名：张三    有效身份证件号码：330106********1234", 20)
    s.box(40, 200, 1460, 820)
    s.text(70, 215, "承运人   航班号   座位等级   日期         时间    客票级别    免费行李", 20, FRAME)
    s.text(70, 255, "自：合肥HFE   南航   CZ8866   V   2024-05-19   18:30   Y50   20K", 20)
    s.text(70, 290, "至：广州CAN", 20)
    s.hline(40, 1460, 330)
    columns = [("票价", v["fare"]), ("燃油附加费", v["fuel"]), ("增值税税率", v["rate"]),
               ("增值税税额", v["vat"]), ("民航发展基金", v["fund"]), ("其他税费", v["other"]), ("合计", v["total"])]
    for i, (label, value) in enumerate(columns):
        x = 70 + i * 200
        s.text(x, 350, label, 20, FRAME)
        s.text(x, 395, value if value.endswith("%") else "CNY " + value, 22)
    s.hline(40, 1460, 440)
    s.text(70, 460, "电子客票号码：" + v["ticket"], 22)
    s.text(70, 510, "购买方名称：" + v["buyer_name"], 22)
    s.text(70, 560, "统一社会信用代码/纳税人识别号：" + v["buyer_tax_no"], 22)
    s.text(70, 620, "填开单位：中国南方航空股份有限公司", 22)
    return s.image


def draw_taxi(v: dict) -> Image.Image:
    """A machine-printed taxi receipt (出租汽车发票): a narrow slip, one label and value per line."""
    s = Sheet(620, 1100)
    s.text(70, 30, v["title"], 34, FRAME)
    s.text(240, 85, "发票联", 26, FRAME)
    rows = [("发票代码", v["code"]), ("发票号码", v["number"]), ("车号", "粤B·T1234"), ("证号", "123456"),
            ("日期", v["date"]), ("上车", "10:05"), ("下车", "10:31"), ("单价", "2.60元"), ("里程", "12.3km"),
            ("等候", "00:03:10"), ("金额", "￥" + v["amount"] + "元")]
    for i, (label, value) in enumerate(rows):
        s.text(60, 160 + i * 75, label, 28)
        s.text(250, 160 + i * 75, value, 28)
    return s.image


def draw_quota(v: dict) -> Image.Image:
    """定额发票: a pre-printed slip whose denomination is printed in capitals and in figures."""
    s = Sheet(1000, 640)
    s.text(250, 30, v["title"], 36, FRAME)
    s.text(420, 90, "发票联", 28, FRAME)
    s.text(60, 160, "发票代码：" + v["code"], 24)
    s.text(560, 160, "发票号码：" + v["number"], 24)
    s.box(60, 230, 940, 520)
    s.text(330, 270, v["words"], 64, FRAME)
    s.text(380, 400, "￥" + v["figure"], 48, FRAME)
    s.text(60, 560, "单位名称（盖章）：", 22)
    return s.image
