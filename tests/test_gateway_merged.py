"""A record the node merged over quiet hours is one observation over its
span in the dashboard and the sinks: never spread into per-interval or
per-hour values it does not have."""
import datetime as dt

from vistelse_gateway.forward import base
from vistelse_gateway.web import pages

UTC = dt.timezone.utc
T22 = dt.datetime(2026, 3, 2, 22, 0, tzinfo=UTC).timestamp()


def report(start, span, person_s, visits, crossings):
    return {"start_at": start, "end_at": start + span * 300, "span": span, "interval_s": 300,
            "data": {"zones": [{"visits": visits, "person_s": person_s, "max_occupancy": 2, "dwell_hist": None}],
                     "lines": [{"in": crossings, "out": 0, "total_in": crossings, "total_out": 0}]}}


def test_a_merged_night_adds_to_the_day_but_to_no_hour():
    night = report(T22 + 1200, 92, 5 * 3600, 6, 4)              # 22:20 to 06:00, six people
    evening = [report(T22 + 300 * i, 1, 600, 3, 2) for i in range(4)]   # 22:00-22:20, two present
    agg = pages.aggregate(evening + [night], UTC, 7)
    assert agg["occupancy_by_hour"][22] == 2.0                   # the four 5-minute records only
    assert all(agg["occupancy_by_hour"][h] is None for h in (23, 0, 1, 2, 3, 4, 5))
    assert agg["in_per_day"] == [4 * 2 + 4]                      # the night's crossings count, on its start day


def test_a_merged_record_goes_to_the_platform_as_one_observation_over_its_span():
    night = report(T22 + 1200, 92, 5 * 3600, 6, 4)
    night.update({"dev_eui": "70b3d57ed0000042", "seq": 10, "received_at": night["end_at"] + 5,
                  "time_estimated": False, "site": "park"})
    doc = base.report_json(night)
    assert doc["span"] == 92 and doc["start"].startswith("2026-03-02T22:20:00") and doc["end"].startswith("2026-03-03T06:00:00")
    assert doc["zones"][0]["mean_occupancy"] == round(5 * 3600 / (92 * 300), 4)   # over the whole span
