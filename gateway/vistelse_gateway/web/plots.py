"""Small hand-written SVG charts: no JavaScript, no CDN, readable in any browser and in print."""
from html import escape

W, H = 640, 240
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 28, 40
COLORS = ("#2f6f9f", "#d9822b", "#5a9e4b", "#8e5ea2")


def _nice_max(v):
    if v <= 0:
        return 1
    import math
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(v):
    return ("%d" % v) if float(v).is_integer() else ("%.2f" % v).rstrip("0").rstrip(".")


def _frame(title, ymax, unit):
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img" '
             'aria-label="%s" style="max-width:%dpx;font:11px sans-serif">' % (W, H, escape(title), W),
             '<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>' % (PAD_L, escape(title))]
    ih = H - PAD_T - PAD_B
    for k in range(5):
        v = ymax * k / 4
        y = PAD_T + ih - ih * k / 4
        parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (PAD_L, W - PAD_R, y, y))
        parts.append('<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>' % (PAD_L - 4, y + 4, _fmt(v)))
    if unit:
        parts.append('<text x="4" y="%d" fill="#555">%s</text>' % (PAD_T - 6, escape(unit)))
    return parts


def bars(title, labels, series, unit="", names=None, label_every=1):
    """Grouped bar chart. series: list of lists (one per group member)."""
    if series and not isinstance(series[0], (list, tuple)):
        series = [series]
    vals = [v for s in series for v in s if v is not None]
    ymax = _nice_max(max(vals) if vals else 0)
    parts = _frame(title, ymax, unit)
    n = max(1, len(labels))
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    slot = iw / n
    bw = slot * 0.8 / max(1, len(series))
    for i, label in enumerate(labels):
        for j, s in enumerate(series):
            v = s[i] if i < len(s) else None
            if v is None:
                continue
            h = ih * v / ymax
            x = PAD_L + i * slot + slot * 0.1 + j * bw
            parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>'
                         % (x, PAD_T + ih - h, max(bw - 1, 1), h, COLORS[j % len(COLORS)],
                            escape(str(label)), _fmt(round(v, 2))))
        if i % label_every == 0:
            parts.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#333">%s</text>'
                         % (PAD_L + i * slot + slot / 2, H - PAD_B + 14, escape(str(label))))
    if names:
        for j, name in enumerate(names):
            parts.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>'
                         % (W - 160 + j * 75, 8, COLORS[j % len(COLORS)], W - 146 + j * 75, 17, escape(name)))
    parts.append("</svg>")
    return "".join(parts)


def heatmap(title, row_labels, col_labels, matrix, unit=""):
    """Rows x columns of values (None = no data); darker = more."""
    vals = [v for row in matrix for v in row if v is not None]
    vmax = max(vals) if vals else 1
    vmax = vmax or 1
    cw = (W - PAD_L - PAD_R) / max(1, len(col_labels))
    rh = 22
    height = PAD_T + rh * len(row_labels) + 30
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img" '
             'aria-label="%s" style="max-width:%dpx;font:11px sans-serif">' % (W, height, escape(title), W),
             '<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>' % (PAD_L, escape(title))]
    for r, label in enumerate(row_labels):
        y = PAD_T + r * rh
        parts.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (PAD_L - 4, y + 15, escape(label)))
        for c in range(len(col_labels)):
            v = matrix[r][c]
            if v is None:
                fill = "#f4f4f4"
            else:
                t = v / vmax
                fill = "rgb(%d,%d,%d)" % (240 - 193 * t, 244 - 133 * t, 248 - 89 * t)
            parts.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %s</title></rect>'
                         % (PAD_L + c * cw, y, cw - 1, rh - 2, fill, escape(label), escape(str(col_labels[c])),
                            "no data" if v is None else "%s %s" % (_fmt(round(v, 2)), unit)))
    for c, label in enumerate(col_labels):
        if c % 3 == 0:
            parts.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                         % (PAD_L + c * cw + cw / 2, PAD_T + rh * len(row_labels) + 14, escape(str(label))))
    parts.append('<text x="%d" y="%d" fill="#555">darker = more (max %s %s)</text>'
                 % (W - 220, height - 4, _fmt(round(vmax, 2)), escape(unit)))
    parts.append("</svg>")
    return "".join(parts)


def line(title, labels, values, unit="", ymax=None):
    vals = [v for v in values if v is not None]
    ymax = ymax or _nice_max(max(vals) if vals else 0)
    parts = _frame(title, ymax, unit)
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    n = max(1, len(labels) - 1)
    pts = []
    for i, v in enumerate(values):
        x = PAD_L + iw * i / n
        if v is None:
            if len(pts) > 1:
                parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (COLORS[0], " ".join(pts)))
            pts = []
            continue
        y = PAD_T + ih - ih * v / ymax
        pts.append("%.1f,%.1f" % (x, y))
        parts.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: %s</title></circle>'
                     % (x, y, COLORS[0], escape(str(labels[i])), _fmt(round(v, 3))))
    if len(pts) > 1:
        parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (COLORS[0], " ".join(pts)))
    step = max(1, len(labels) // 10)
    for i in range(0, len(labels), step):
        parts.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                     % (PAD_L + iw * i / n, H - PAD_B + 14, escape(str(labels[i]))))
    parts.append("</svg>")
    return "".join(parts)
