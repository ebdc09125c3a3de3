"""parse_rfc3339: the short path for what network servers send ("...Z") gives
the same instant as the general path, and refuses the same strings."""
import pytest
from hypothesis import given, settings, strategies as st

from vistelse_gateway.timeutil import parse_rfc3339


def general(text):
    """The same instant written with "+00:00": the short path does not take it."""
    return parse_rfc3339(text[:-1] + "+00:00")


@pytest.mark.parametrize("text, expected", [
    ("2024-01-02T03:04:05Z", 1704164645.0),
    ("2024-01-02T03:04:05.5Z", 1704164645.5),
    ("2024-01-02T03:04:05.123456789Z", 1704164645.123456),     # ChirpStack's nanoseconds, truncated
    ("2024-01-02T04:04:05+01:00", 1704164645.0),
    ("2024-01-02T03:04:05z", 1704164645.0),
    ("2024-01-02T03:04:05", 1704164645.0),                       # no offset: UTC
])
def test_known_instants(text, expected):
    assert parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-02-30T03:04:05Z", "2024-01-02T24:00:00Z",
                                  "2024-01-02T03:04:60Z", "2024-13-02T03:04:05Z"])
def test_refused(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


digits = st.text("0123456789", min_size=1, max_size=2)


@settings(max_examples=3000)
@given(st.text("0123456789", min_size=4, max_size=4), digits, digits, digits, digits, digits,
       st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12).map(lambda f: "." + f)))
def test_short_path_agrees_with_general_path(year, month, day, hour, minute, second, frac):
    text = "%s-%s-%sT%s:%s:%s%sZ" % (year, month.zfill(2), day.zfill(2), hour.zfill(2), minute.zfill(2),
                                     second.zfill(2), frac)
    try:
        short = ("ok", parse_rfc3339(text))
    except ValueError:
        short = ("refused",)
    try:
        long = ("ok", general(text))
    except ValueError:
        long = ("refused",)
    assert short == long, text
