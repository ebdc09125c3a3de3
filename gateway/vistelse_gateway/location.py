"""A device's location as the registry holds it: {"lat": 59.33, "lon": 18.06}, or the
text "59.33,18.06" that `vistelse provision --location` writes, or a description
without coordinates ("demo", "lamp post 14")."""


def parse(value):
    """-> {"lat": float, "lon": float} or None (no coordinates given).
    ValueError when coordinates are given but wrong (e.g. "59.4 N", or out of range)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) != 2:
            return None                      # a description, not coordinates
        lat, lon = parts
    elif isinstance(value, dict):
        if "lat" not in value or "lon" not in value:
            raise ValueError("location must have lat and lon")
        lat, lon = value["lat"], value["lon"]
    else:
        raise ValueError("location must be {lat, lon} or \"lat,lon\", not %r" % (value,))
    try:
        if isinstance(lat, bool) or isinstance(lon, bool):
            raise ValueError
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        raise ValueError("location lat/lon must be decimal degrees, not %r, %r" % (lat, lon)) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("location %r, %r is out of range" % (lat, lon))
    return {"lat": lat, "lon": lon}


def point(value):
    """GeoJSON Point, or None when the registry has no usable coordinates."""
    try:
        loc = parse(value)
    except ValueError:
        return None
    return {"type": "Point", "coordinates": [loc["lon"], loc["lat"]]} if loc else None
