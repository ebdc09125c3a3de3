"""Nothing lost end to end: three simulated days at 5-minute intervals, 10 %
random uplink loss and a 6-hour outage of the network server; the node
firmware (CPython), the gateway service, mosquitto, receipts as ChirpStack
downlink commands (tools/vistelse_tools/receipt_rig.py)."""
import os

import pytest

from vistelse_gateway.testing import mosquitto_path
from vistelse_tools import receipt_rig


def test_three_days_with_loss_and_an_outage_lose_nothing(tmp_path):
    if mosquitto_path() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed: run tools/setup.sh")
        pytest.skip("mosquitto is not installed")
    f = receipt_rig.run(days=3, loss=0.1, outage_h=6, dr=5, seed=1, workdir=str(tmp_path), broker="mosquitto")
    assert f["uplinks_lost"] >= 80                        # 10 % plus the outage's 6 hours went missing
    assert f["intervals"] >= 860                          # 3 days of 5-minute intervals
    assert f["missing"] == 0, f                           # every interval older than the last 3 hours stored...
    assert f["stored_twice"] == 0                         # ...exactly once
    assert f["misplaced_in_time"] == 0                    # late ones where they belong in time
    assert f["recovered"] >= 72                           # the outage's intervals came back, and more
    assert f["sink_items"] == f["sink_unique"]            # the platform got each report once
    assert f["downlinks_max_24h"] <= 8                    # within TTN's 10 a day, room for a configuration
    assert f["airtime_max_24h_s"] <= 30.0                 # TTN's fair use of uplink airtime
