"""The picture widget: the latest frame scaled to fit (letterboxed), an optional overlay, and the error line.

GUI thread only. The widget holds no engine: the window hands it frames and overlay lines, so it can be
painted and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PyQt6.QtCore import QRect, QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter
from PyQt6.QtWidgets import QLabel, QSizePolicy, QWidget

_BACKGROUND = QColor(0, 0, 0)
_PANEL = QColor(0, 0, 0, 160)
_TEXT = QColor(235, 235, 235)
_REC = QColor(220, 30, 30)


@dataclass
class OverlayInfo:
    """What the overlay shows; text lines first, then the two meters."""

    lines: list[str] = field(default_factory=list)
    level: float = 0.0   # 0..1
    onset: float = 0.0   # 0..1


def fit_rect(src_w: int, src_h: int, dst: QRect) -> QRect:
    """The largest rectangle of the source's aspect ratio centred in ``dst`` (bars fill the rest)."""
    if src_w <= 0 or src_h <= 0 or dst.width() <= 0 or dst.height() <= 0:
        return QRect(dst.x(), dst.y(), 0, 0)
    scale = min(dst.width() / src_w, dst.height() / src_h)
    w, h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    return QRect(dst.x() + (dst.width() - w) // 2, dst.y() + (dst.height() - h) // 2, w, h)


class FrameView(QWidget):
    """Paints one RGB frame, kept at its aspect ratio on a black background."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(64, 64)
        # The widget paints every pixel itself: skip Qt's background erase on each repaint.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._rgb: np.ndarray | None = None  # keeps the buffer alive: the QImage below only borrows it
        self._image: QImage | None = None
        self.overlay: OverlayInfo | None = None
        self.recording = False
        self.error_label = QLabel(self)
        self.error_label.setObjectName("error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(
            "QLabel#error { color: white; background: rgba(190, 20, 20, 220); padding: 6px; font-weight: bold; }")
        self.error_label.hide()

    def set_frame(self, rgb: np.ndarray) -> None:
        """Show ``rgb`` ([H, W, 3] uint8) from the next paint on."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an [H, W, 3] uint8 frame, got {rgb.shape} {rgb.dtype}")
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        self._rgb = rgb
        self._image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.update()

    def show_error(self, message: str | None) -> None:
        """A red line across the top of the picture; None hides it."""
        if message:
            self.error_label.setText(message)
            self.error_label.show()
            self._place_error()
        else:
            self.error_label.hide()

    def _place_error(self) -> None:
        width = self.width()
        self.error_label.setFixedWidth(width)
        self.error_label.setFixedHeight(self.error_label.heightForWidth(width))
        self.error_label.move(0, 0)
        self.error_label.raise_()

    def resizeEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        super().resizeEvent(event)
        if self.error_label.isVisible():
            self._place_error()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            p.fillRect(self.rect(), _BACKGROUND)
            if self._image is not None:
                p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
                p.drawImage(QRectF(fit_rect(self._image.width(), self._image.height(), self.rect())), self._image)
            if self.overlay is not None:
                self._paint_overlay(p, self.overlay)
            if self.recording:
                self._paint_rec(p)
        finally:
            p.end()

    def _paint_overlay(self, p: QPainter, info: OverlayInfo) -> None:
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(9)
        p.setFont(font)
        fm = p.fontMetrics()
        line_h, pad, bar_w = fm.height(), 8, 160
        text_w = max([fm.horizontalAdvance(s) for s in info.lines] + [bar_w + fm.horizontalAdvance("onset ")])
        top = pad + (self.error_label.height() if self.error_label.isVisible() else 0)
        box = QRect(pad, top, text_w + 2 * pad, (len(info.lines) + 2) * line_h + 2 * pad)
        p.fillRect(box, _PANEL)
        p.setPen(_TEXT)
        y = box.y() + pad
        for s in info.lines:
            p.drawText(box.x() + pad, y + fm.ascent(), s)
            y += line_h
        for name, value, color in (("level", info.level, QColor(60, 200, 90)),
                                   ("onset", info.onset, QColor(240, 180, 40))):
            p.setPen(_TEXT)
            p.drawText(box.x() + pad, y + fm.ascent(), name)
            x0 = box.x() + pad + fm.horizontalAdvance("onset ")
            bar = QRect(x0, y + 2, bar_w, line_h - 4)
            p.fillRect(bar, QColor(60, 60, 60))
            p.fillRect(QRect(x0, y + 2, round(bar_w * min(max(value, 0.0), 1.0)), line_h - 4), color)
            y += line_h

    def _paint_rec(self, p: QPainter) -> None:
        # Shown with or without the overlay: a performer must always know a recording is running.
        r = 7
        x, y = self.width() - 3 * r - 40, 10 + (self.error_label.height() if self.error_label.isVisible() else 0)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setBrush(_REC)
        p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(x, y, 2 * r, 2 * r)
        p.setPen(_REC)
        p.drawText(x + 2 * r + 4, y + 2 * r - 2, "REC")
