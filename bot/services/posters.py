"""Printable branch posters: the branch's name, a QR code of its deep link, one line of
invitation in Bahasa Indonesia and the link itself for those who cannot scan.

segno encodes the QR code and matplotlib (the charts' library) lays out the page. The code is
placed pixel for pixel (`figimage`, no resampling), so a printer or phone reads it sharply.
"""

from __future__ import annotations

import io

import segno

from bot.services.i18n import N_, use_locale
from bot.services.i18n import gettext as _

INVITATION = N_("Scan this code with your phone camera to tell us about your visit.")
DPI = 150
WIDTH, HEIGHT = 1240, 1754  # A4 at 150 dpi
QR_BORDER = 4  # quiet zone, in modules
QR_ERROR = "m"


def qr_code(link: str) -> segno.QRCode:
    """The code a poster draws for `link`."""
    return segno.make(link, error=QR_ERROR, micro=False)


def render_poster(branch_name: str, link: str) -> bytes:
    """An A4 PNG poster for one branch link."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.array([list(row) for row in qr_code(link).matrix], dtype=bool)
    matrix = np.pad(matrix, QR_BORDER, constant_values=False)
    scale = 900 // matrix.shape[0]
    pixels = np.kron(~matrix, np.ones((scale, scale), dtype=bool)).astype(np.uint8) * 255
    side = pixels.shape[0]

    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    left, bottom = (WIDTH - side) // 2, (HEIGHT - side) // 2
    figure.figimage(pixels, xo=left, yo=bottom, cmap="gray", vmin=0, vmax=255, origin="upper")
    with use_locale("id"):
        invitation = _(INVITATION)
    top_of_code = (bottom + side) / HEIGHT
    figure.text(
        0.5,
        top_of_code + 0.11,
        branch_name,
        ha="center",
        va="center",
        fontsize=34,
        weight="bold",
        wrap=True,
    )
    figure.text(
        0.5, top_of_code + 0.03, invitation, ha="center", va="center", fontsize=15, wrap=True
    )
    figure.text(
        0.5, bottom / HEIGHT - 0.03, link, ha="center", va="center", fontsize=12, color="#333333"
    )
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, facecolor="white")
    return out.getvalue()
