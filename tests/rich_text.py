"""Rich text as a person reads it on screen: tags gone, entities decoded, the zero-width
spaces that let a path wrap removed."""

from __future__ import annotations

from PySide6.QtGui import QTextDocumentFragment


def as_read(text: str) -> str:
    return QTextDocumentFragment.fromHtml(text).toPlainText().replace("\u200b", "")
