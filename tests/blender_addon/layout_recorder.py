"""A stand-in for Blender's UILayout that records what a draw function asks for, checks that every property and
operator it names exists, and can draw the recording to a PNG (a real UILayout exists only while Blender
draws a window, which a headless process never does).

    layout = RecordingLayout()
    panel.draw(SimpleNamespace(layout=layout), bpy.context)
    layout.calls            # [("prop", "job_dir"), ("operator", "shotfield.run"), ...] in drawing order
    render_png(layout, path)  # a mock-up of the panel: boxes, fields, buttons, the progress bar
"""
from __future__ import annotations

from dataclasses import dataclass, field

import bpy


@dataclass
class Item:
    kind: str                      # column | row | box | split | prop | operator | label | progress | separator
    text: str = ""
    icon: str = ""
    value: object = None           # prop: its value; progress: the fraction
    data: object = None            # prop: (data, name, expand)
    children: list = field(default_factory=list)


class OperatorProperties:
    """What `layout.operator()` returns: assigning a property it does not have fails, as in Blender."""

    def __init__(self, idname: str):
        module, _, name = idname.partition(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()  # KeyError if not registered
        object.__setattr__(self, "_names", {p.identifier for p in rna.properties})
        object.__setattr__(self, "values", {})

    def __setattr__(self, name, value):
        assert name in self._names, f"operator has no property {name!r}"
        self.values[name] = value


class RecordingLayout:
    def __init__(self, calls=None, item: Item | None = None):
        self.calls = [] if calls is None else calls
        self.item = item or Item("column")
        self.scale_y = 1.0
        self.enabled = self.active = True
        self.alignment = "EXPAND"

    def _add(self, item: Item) -> Item:
        self.item.children.append(item)
        return item

    def _container(self, kind: str) -> "RecordingLayout":
        return RecordingLayout(self.calls, self._add(Item(kind)))

    def column(self, **kwargs):
        return self._container("column")

    def row(self, **kwargs):
        return self._container("row")

    def box(self, **kwargs):
        return self._container("box")

    def split(self, **kwargs):
        return self._container("split")

    def prop(self, data, name, text=None, icon="", expand=False, **kwargs):
        assert name in data.bl_rna.properties, f"{data} has no property {name!r}"
        self.calls.append(("prop", name))
        label = data.bl_rna.properties[name].name if text is None else text
        self._add(Item("prop", label, icon, getattr(data, name), (data, name, expand)))

    def operator(self, idname, text=None, icon="", **kwargs):
        props = OperatorProperties(idname)
        self.calls.append(("operator", idname))
        module, _, name = idname.partition(".")
        label = getattr(getattr(bpy.ops, module), name).get_rna_type().name if text is None else text
        self._add(Item("operator", label, icon))
        return props

    def label(self, text="", icon="", **kwargs):
        self.calls.append(("label", text))
        self._add(Item("label", text, icon))

    def progress(self, text="", factor=0.0, type="BAR", **kwargs):
        self.calls.append(("progress", text))
        self._add(Item("progress", text, value=factor))

    def separator(self, **kwargs):
        self._add(Item("separator"))


# --- a mock-up of the recording as a PNG ------------------------------------------------------------------
ROW, PAD, WIDTH = 22, 6, 340
COLOURS = {"panel": (48, 48, 48), "box": (58, 58, 58), "field": (30, 30, 30), "button": (84, 84, 84),
           "text": (230, 230, 230), "dim": (160, 160, 160), "bar": (71, 114, 179), "on": (71, 114, 179),
           "error": (230, 90, 90), "outline": (36, 36, 36)}


def _height(item: Item) -> int:
    if item.kind in ("column", "box", "split"):
        inner = sum(_height(c) for c in item.children)
        return inner + (2 * PAD if item.kind == "box" else 0)
    if item.kind == "row":
        return max((_height(c) for c in item.children), default=0)
    if item.kind == "separator":
        return PAD
    return ROW


def _draw(draw, font, item: Item, x: int, y: int, w: int) -> int:
    """Draw `item` at (x, y), `w` wide; returns the y below it."""
    if item.kind == "box":
        h = _height(item)
        draw.rounded_rectangle([x, y + 1, x + w, y + h - 2], 4, fill=COLOURS["box"], outline=COLOURS["outline"])
        inner = y + PAD
        for child in item.children:
            inner = _draw(draw, font, child, x + PAD, inner, w - 2 * PAD)
        return y + h
    if item.kind in ("column", "split"):
        for child in item.children:
            y = _draw(draw, font, child, x, y, w)
        return y
    if item.kind == "row":
        n = max(1, len(item.children))
        cw = w // n
        for k, child in enumerate(item.children):
            _draw(draw, font, child, x + k * cw, y, cw - 2)
        return y + _height(item)
    if item.kind == "separator":
        return y + PAD
    box = [x + 1, y + 2, x + w - 1, y + ROW - 2]
    if item.kind == "label":
        colour = COLOURS["error"] if item.icon in ("ERROR", "CANCEL") else COLOURS["text"]
        prefix = {"ERROR": "! ", "CANCEL": "x ", "CHECKMARK": "v ", "TIME": "~ ", "INFO": "i "}.get(item.icon, "")
        draw.text((x + 4, y + 5), prefix + item.text, fill=colour, font=font)
    elif item.kind == "operator":
        draw.rounded_rectangle(box, 3, fill=COLOURS["button"], outline=COLOURS["outline"])
        _centred(draw, font, item.text, box)
    elif item.kind == "progress":
        draw.rounded_rectangle(box, 3, fill=COLOURS["field"], outline=COLOURS["outline"])
        fraction = min(max(float(item.value or 0), 0.0), 1.0)
        if fraction > 0:
            draw.rounded_rectangle([box[0], box[1], box[0] + int((box[2] - box[0]) * fraction), box[3]], 3, fill=COLOURS["bar"])
        _centred(draw, font, item.text, box)
    elif item.kind == "prop":
        _draw_prop(draw, font, item, x, y, w, box)
    return y + ROW


def _draw_prop(draw, font, item: Item, x, y, w, box) -> None:
    data, name, expand = item.data
    rna = data.bl_rna.properties[name]
    value = item.value
    if rna.type == "BOOLEAN":
        draw.rectangle([x + 4, y + 5, x + 15, y + 16], fill=COLOURS["on"] if value else COLOURS["field"], outline=COLOURS["outline"])
        draw.text((x + 22, y + 5), item.text, fill=COLOURS["text"], font=font)
        return
    if rna.type == "ENUM" and expand:
        items = list(rna.enum_items)
        cw = w // max(1, len(items))
        for k, enum_item in enumerate(items):
            cell = [x + k * cw + 1, y + 2, x + (k + 1) * cw - 1, y + ROW - 2]
            draw.rectangle(cell, fill=COLOURS["on"] if enum_item.identifier == value else COLOURS["button"], outline=COLOURS["outline"])
            _centred(draw, font, enum_item.name, cell)
        return
    if rna.type == "ENUM":
        value = next((i.name for i in rna.enum_items if i.identifier == value), value)
    elif rna.type == "POINTER":
        value = value.name if value is not None else ""
    label_w = int(w * 0.38)
    draw.text((x + 4, y + 5), item.text, fill=COLOURS["dim"], font=font)
    draw.rounded_rectangle([x + label_w, y + 2, x + w - 1, y + ROW - 2], 3, fill=COLOURS["field"], outline=COLOURS["outline"])
    draw.text((x + label_w + 5, y + 5), _fit(str(value), w - label_w - 10), fill=COLOURS["text"], font=font)


def _fit(text: str, width: int) -> str:
    chars = max(4, width // 6)
    return text if len(text) <= chars else "..." + text[-(chars - 3):]


def _centred(draw, font, text, box) -> None:
    text = _fit(text, box[2] - box[0] - 6)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((box[0] + box[2] - (right - left)) // 2, box[1] + 3), text, fill=COLOURS["text"], font=font)


def render_png(layout: RecordingLayout, path, title: str = "Shotfield") -> None:
    """Draw the recorded panel as a mock-up PNG (`path`)."""
    from PIL import Image, ImageDraw, ImageFont

    height = _height(layout.item) + ROW + 2 * PAD
    image = Image.new("RGB", (WIDTH, height), COLOURS["panel"])
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.rectangle([0, 0, WIDTH, ROW], fill=COLOURS["outline"])
    draw.text((PAD, 5), title, fill=COLOURS["text"], font=font)
    _draw(draw, font, layout.item, PAD, ROW + PAD, WIDTH - 2 * PAD)
    image.save(path)
