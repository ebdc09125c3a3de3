"""Time on air (Semtech AN1200.13) and the EU868 limits, in both runtimes."""
import json

from vistelse_node import airtime


def test_figures_from_the_brief():
    # 20 B at SF7 ~ 72 ms, at SF12 ~ 1.81 s; 51 B at SF12 ~ 2.79 s (13 B LoRaWAN overhead)
    assert abs(airtime.time_on_air_us(20, 7) - 72000) < 500
    assert abs(airtime.time_on_air_us(20, 12) - 1810000) < 5000
    assert abs(airtime.time_on_air_us(51, 12) - 2790000) < 5000


def test_payload_limits_and_daily_uplinks():
    assert [airtime.max_payload(dr) for dr in range(6)] == [51, 51, 51, 115, 242, 242]
    # 30 s a day at SF12: ten 51-byte reports
    assert airtime.uplinks_per_day(51, 0) == 10
    # 1 % duty cycle after a 2.79 s uplink: 276.6 s of silence
    assert airtime.off_time_ms(airtime.airtime_us(51, 0)) == 276553


def test_airtime_grows_with_payload_and_spreading_factor():
    for sf in range(7, 13):
        times = [airtime.time_on_air_us(n, sf) for n in range(0, 243, 11)]
        assert times == sorted(times)
    assert [airtime.airtime_us(51, dr) for dr in range(6)] == sorted(
        (airtime.airtime_us(51, dr) for dr in range(6)), reverse=True)


def test_same_figures_under_micropython(micropython):
    out = micropython("from vistelse_node import airtime\n"
                      "print([airtime.airtime_us(n, dr) for dr in range(6) for n in (11, 51, 115)])")
    assert json.loads(out) == [airtime.airtime_us(n, dr) for dr in range(6) for n in (11, 51, 115)]
