"""`vistelse airtime`: the batching plan keeps the budget and the duty cycle."""
from vistelse_node import airtime
from vistelse_tools import airtime as tool
from vistelse_tools import deploy


def test_plan_keeps_the_daily_budget_and_duty_cycle():
    for dr in range(6):
        for interval in (60, 300, 900, 3600):
            pl = tool.plan(1, 1, interval, dr, 30000)
            if pl.get("batch"):
                assert pl["day_ms"] <= 30000
                assert pl["bytes"] <= airtime.max_payload(dr)
                t_us = airtime.airtime_us(pl["bytes"], dr)
                # the next uplink comes batch x interval later: longer than the duty-cycle silence
                assert airtime.off_time_ms(t_us) <= pl["batch"] * interval * 1000


def test_sf12_cannot_report_every_five_minutes_and_says_what_would_work():
    pl = tool.plan(1, 1, 300, 0, 30000)
    assert pl["batch"] is None and pl["largest"] == 1
    # ten 51-byte uplinks a day: one every 8640 s
    assert pl["min_interval_s"] == 8640
    assert tool.plan(1, 1, 8640, 0, 30000)["batch"] == 1


def test_standard_report_is_the_contract_size():
    assert tool.report_size(1, 1, 1) == 51
    assert tool.max_batch(1, 1, 0) == 1 and tool.max_batch(1, 1, 3) == 4


def test_battery_estimate_is_dominated_by_the_sensor():
    est = tool.battery("esp32_devkitc", "ld2450", 144, 118.0, 19.0)
    assert est["sensor_ma"] > 10 * (est["mcu_ma"] + est["modem_ma"])
    assert est["days"] == 19000 / est["total_ma"] / 24


def test_command_prints_the_table_and_writes_a_png(tmp_path, capsys):
    assert tool.main(["--plot", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out
    assert "51 bytes" in out and "DR5" in out and "days" in out
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_board_deploy_knows_has_an_estimate(capsys):
    """The boards are deploy's (one list); each has its MCU's and its modem's figures."""
    for board in deploy.BOARDS:
        est = tool.battery(board, "ld2450", 144, 118.0, 19.0)
        assert est["mcu_ma"] > 0 and est["modem_ma"] > 0 and est["days"] > 0
        assert tool.main(["--board", board]) == 0
        assert "days" in capsys.readouterr().out
