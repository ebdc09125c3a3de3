"""The queue's flash wear per board, counted on the real littlefs
(tools/vistelse_tools/flash_endurance.py): at 5-minute intervals, with a
6-hour outage in the day (merges, compactions), every supported board's
filesystem lasts at least 10 years; the NUCLEO-F446RE's internal-flash FAT
would not (one 16 KB sector erased per file operation, 10k cycles)."""
import pytest

from vistelse_tools import flash_endurance


@pytest.mark.parametrize("board", ["esp32_devkitc", "weact_h743"])
def test_ten_years_at_five_minute_intervals(board):
    fig = flash_endurance.measure(board, days=1, outage_h=6)
    print("\n%s" % fig)
    assert fig["intervals"] >= 287 and fig["uplinks"] > 100          # the day happened, reports went out
    assert fig["erases_per_day"] > 0 and fig["file_ops_per_day"] >= 287
    assert fig["years"] >= 10
    # wear is levelled: no block took more than a small share of the day's erases
    assert fig["max_block_erases"] <= max(8, fig["erases_per_day"] // 20)


def test_internal_flash_fat_wears_out_in_weeks():
    fig = flash_endurance.measure("nucleo_f446re", days=0.5)
    assert fig["years"] < 1                         # 10k cycles / ~550 file operations a day: weeks
