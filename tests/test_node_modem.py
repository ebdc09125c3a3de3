"""Modem drivers against the AT-dialect emulators (in-process, simulated time)."""
import pytest

from node_fakes import ScriptedUart

from vistelse_node.clock import SimClock
from vistelse_node.modem import base
from vistelse_node.modem.base import ModemError, first_int
from vistelse_node.modem.rak3172 import Rak3172
from vistelse_node.modem.wioe5 import WioE5
from vistelse_tools.emulators import rak3172 as emu_rak, session as emu_session, wioe5 as emu_wio

DEV_EUI = "70b3d57ed0000001"
APP_KEY = "00112233445566778899aabbccddeeff"

DIALECTS = {
    "rak3172-rui3v4": (Rak3172, lambda s: emu_rak.Rak3172(s, "rui3v4")),
    "rak3172-rui3v3": (Rak3172, lambda s: emu_rak.Rak3172(s, "rui3v3")),
    "wioe5": (WioE5, lambda s: emu_wio.WioE5(s)),
}


def make(dialect, **session_kw):
    clock = SimClock()
    session = emu_session.Session(lambda: clock.elapsed_ms, **session_kw)
    driver_cls, emu_factory = DIALECTS[dialect]
    emu = emu_factory(session)
    modem = driver_cls(emu, clock)
    return clock, session, emu, modem


def wait_event(clock, modem, limit_ms=60000, step=50):
    for _ in range(limit_ms // step):
        modem.poll()
        ev = modem.take_event()
        if ev is not None:
            return ev
        if hasattr(clock, "advance"):
            clock.advance(step)
        else:
            clock.sleep_ms(step)
    return None


def joined(dialect, **kw):
    clock, session, emu, modem = make(dialect, **kw)
    modem.setup(DEV_EUI, "0000000000000000", APP_KEY)
    modem.maintain()
    assert wait_event(clock, modem) == ("joined",)
    clock.advance(session.wait_ms() + 100)          # the join request's own duty-cycle wait
    return clock, session, emu, modem


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request):
    return request.param


def test_setup_writes_identity_and_join_succeeds(dialect):
    clock, session, emu, modem = joined(dialect)
    assert session.dev_eui == DEV_EUI and session.joined and modem.joined
    sent = [line for d, line in emu.log if d == ">"]
    assert any(APP_KEY.upper() in line for line in sent)


def test_join_retries_with_growing_backoff(dialect):
    clock, session, emu, modem = make(dialect, join_failures=3)
    modem.setup(DEV_EUI, "0000000000000000", APP_KEY)
    times = []
    for _ in range(4):
        while True:
            modem.maintain()
            modem.poll()
            ev = modem.take_event()
            if ev is not None:
                break
            clock.advance(100)
        times.append((clock.elapsed_ms, ev[0]))
        if ev[0] == "joined":
            break
    assert [e for _, e in times] == ["join_failed"] * 3 + ["joined"]
    gaps = [b[0] - a[0] for a, b in zip(times, times[1:])]
    assert gaps[0] < gaps[1] < gaps[2]          # exponential backoff between attempts
    assert session.joins == 4 and modem.failures == 3


def test_unconfirmed_uplink_reaches_the_network(dialect):
    got = []
    clock, session, emu, modem = joined(dialect, on_uplink=got.append)
    modem.send(1, b"\x01\x02\xab")
    assert modem.busy()
    with pytest.raises(ModemError) as exc:
        modem.send(1, b"\x00")
    assert exc.value.cause == base.BUSY
    assert wait_event(clock, modem) == ("sent", None)      # ended: on air is not proven
    assert got[0]["data"] == b"\x01\x02\xab" and got[0]["fport"] == 1 and got[0]["fcnt"] == 0
    assert not modem.busy()


def test_downlink_is_delivered_after_the_uplink(dialect):
    clock, session, emu, modem = joined(dialect)
    session.queue_downlink(2, b"\xde\xad\xbe\xef")
    modem.send(1, b"\x01")
    events = [wait_event(clock, modem), wait_event(clock, modem)]
    assert ("downlink", 2, b"\xde\xad\xbe\xef") in events and ("sent", None) in events


def test_confirmed_uplink_without_ack(dialect):
    clock, session, emu, modem = joined(dialect, ack_fail_rate=1.0)
    modem.send(1, b"\x01", confirmed=True)
    assert wait_event(clock, modem) == ("sent", False)
    assert session.uplinks[-1]["confirmed"]


def test_confirmed_uplink_acked(dialect):
    clock, session, emu, modem = joined(dialect)
    modem.send(3, b"\x01", confirmed=True)
    assert wait_event(clock, modem) == ("sent", True)
    assert session.uplinks[-1]["confirmed"] and session.uplinks[-1]["fport"] == 3


def test_duty_cycle_wait_is_reported_with_its_length(dialect):
    clock, session, emu, modem = joined(dialect, dr=0)
    modem.send(1, bytes(40))
    assert wait_event(clock, modem) == ("sent", None)
    with pytest.raises(ModemError) as exc:
        modem.send(1, bytes(40))
    assert exc.value.cause == base.DUTY_CYCLE
    assert 200000 < exc.value.wait_ms < 300000      # ~99 x 2.5 s after a 40-byte SF12 uplink
    assert not modem.busy()


def test_length_error_at_a_low_data_rate(dialect):
    clock, session, emu, modem = joined(dialect, dr=0)
    with pytest.raises(ModemError) as exc:
        modem.send(1, bytes(52))
    assert exc.value.cause == base.LENGTH


def test_mac_commands_in_fopts_shrink_the_room(dialect):
    clock, session, emu, modem = joined(dialect, dr=0)
    session.fopts = 5
    with pytest.raises(ModemError) as exc:
        modem.send(1, bytes(50))
    assert exc.value.cause == base.LENGTH
    if dialect.startswith("rak3172"):
        # RUI3 service_lora_send: an empty uplink flushes the MAC commands
        # before AT_PARAM_ERROR; airtime was spent
        assert exc.value.on_air and session.fopts == 0 and session.mac_only_uplinks == 1
        clock.advance(session.wait_ms() + 5000)
        modem.poll()
        assert modem.take_event() is None        # the flush's own TX_DONE is not our uplink's
    else:
        # Wio-E5: "Length error 46" says what fits now; nothing went on air
        assert "46" in exc.value.detail and not exc.value.on_air and session.mac_only_uplinks == 0
        modem.send(1, bytes(46))
        assert wait_event(clock, modem) == ("sent", None)
        clock.advance(session.wait_ms())
    modem.send(1, bytes(50))
    assert wait_event(clock, modem) == ("sent", None)


def test_not_joined_is_a_cause_and_clears_the_joined_state(dialect):
    clock, session, emu, modem = joined(dialect)
    session.joined = False                   # the network forgot us (e.g. a rejoin was forced)
    with pytest.raises(ModemError) as exc:
        modem.send(1, b"\x01")
    assert exc.value.cause == base.NOT_JOINED and not modem.joined


def test_busy_modem(dialect):
    clock, session, emu, modem = joined(dialect, busy_rate=1.0)
    with pytest.raises(ModemError) as exc:
        modem.send(1, b"\x01")
    assert exc.value.cause == base.BUSY


def test_data_rate_and_max_payload(dialect):
    clock, session, emu, modem = joined(dialect, dr=3)
    assert modem.data_rate() == 3 and modem.max_payload() == 115
    session.set_dr(0)
    assert modem.data_rate() == 0 and modem.max_payload() == 51


def test_sleep_and_wake(dialect):
    clock, session, emu, modem = joined(dialect)
    assert modem.sleep()
    assert emu.asleep
    modem.wake()
    assert not emu.asleep
    modem.send(1, b"\x01")
    assert wait_event(clock, modem) == ("sent", None)


def test_send_timeout_when_the_modem_goes_silent(dialect):
    clock, session, emu, modem = joined(dialect)
    modem.send(1, b"\x01")
    emu._timers.clear()                       # the modem hangs: no end of the receive windows
    assert wait_event(clock, modem, limit_ms=40000, step=500) == ("send_failed", base.TIMEOUT)
    assert not modem.busy() and modem.failures == 1


def test_no_reply_raises_timeout():
    class Dead:
        def write(self, data):
            return len(data)

        def any(self):
            return 0

        def readinto(self, buf):
            return None
    modem = Rak3172(Dead(), SimClock())
    with pytest.raises(ModemError) as exc:
        modem.command("AT", lambda line: True)
    assert exc.value.cause == base.TIMEOUT


def test_loose_parsing_helpers():
    assert first_int("+LW: LEN, 51") == 51
    assert first_int("Restricted_Wait_43235_ms") == 43235
    assert first_int("+EVT:RX_1:-87:6", 9) == -87
    assert first_int("no number") is None


def test_rak_replies_in_other_casing_and_extra_lines():
    def rak(data):
        """A RAK3172 that answers with lower-case and blank lines, as some builds do."""
        if data.startswith(b"AT+DR=?"):
            return b"\r\n\r\nat+dr=4\r\nok\r\n"
        if data.startswith(b"AT+SEND"):
            return b"ok\r\n+evt:tx_done\r\n"
        return b"\r\nOK\r\n"
    clock = SimClock()
    modem = Rak3172(ScriptedUart(rak), clock)
    assert modem.data_rate() == 4 and modem.max_payload() == 242
    modem.joined = True
    modem.send(1, b"\x01")
    assert wait_event(clock, modem) == ("sent", None)


def test_emulator_over_a_pseudo_terminal_with_pyserial():
    import serial
    from vistelse_tools.emulators.pty_server import PtyModem
    from vistelse_node.clock import SysClock

    got = []
    with PtyModem("rak3172", speed=50, on_uplink=got.append) as server:
        port = serial.Serial(server.path, 115200, timeout=0)

        class SerialUART:
            def write(self, data):
                return port.write(data)

            def any(self):
                return port.in_waiting

            def readinto(self, buf):
                data = port.read(len(buf))
                buf[:len(data)] = data
                return len(data)
        clock = SysClock()
        modem = Rak3172(SerialUART(), clock)
        modem.setup(DEV_EUI, "0000000000000000", APP_KEY)
        modem.maintain()
        assert wait_event(clock, modem, limit_ms=5000, step=10) == ("joined",)
        clock.sleep_ms(server.session.wait_ms() // 50 + 50)     # the join's duty-cycle wait, at 50x
        modem.send(1, b"hello")
        assert wait_event(clock, modem, limit_ms=5000, step=10) == ("sent", None)
        port.close()
    assert got[0]["data"] == b"hello" and got[0]["dev_eui"] == DEV_EUI


def test_modem_driver_runs_under_micropython(micropython):
    import os
    emulators = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "vistelse_tools",
                             "emulators")
    from vistelse_tools.micropython import BOARD_FILES
    out = micropython(
        "from vistelse_node.clock import SimClock\n"
        "from vistelse_node.modem.wioe5 import WioE5\n"
        "from vistelse_node.modem.rak3172 import Rak3172\n"
        "from vistelse_node.modem.base import ModemError\n"
        "from emulators import session, wioe5, rak3172\n"
        "for Drv, Emu in ((WioE5, wioe5.WioE5), (Rak3172, rak3172.Rak3172)):\n"
        "    clock = SimClock()\n"
        "    s = session.Session(lambda: clock.elapsed_ms, dr=2)\n"
        "    m = Drv(Emu(s), clock)\n"
        "    m.setup('70b3d57ed0000001', '0000000000000000', '00112233445566778899aabbccddeeff')\n"
        "    m.maintain()\n"
        "    evs = []\n"
        "    for _ in range(400):\n"
        "        m.poll()\n"
        "        e = m.take_event()\n"
        "        if e:\n"
        "            evs.append(e[0])\n"
        "            if e[0] == 'joined':\n"
        "                s.queue_downlink(2, b'\\x01\\x02')\n"
        "                try:\n"
        "                    m.send(1, b'\\xaa')\n"
        "                except ModemError as exc:\n"
        "                    assert exc.cause == 'duty_cycle' and exc.wait_ms > 0, exc.args\n"
        "                    clock.advance(exc.wait_ms)\n"
        "                    m.send(1, b'\\xaa')\n"
        "            if e[0] == 'sent':\n"
        "                break\n"
        "        clock.advance(50)\n"
        "    print(m.name, evs, m.max_payload(), s.uplinks[0]['data'])\n",
        files=BOARD_FILES + ((emulators, "/flash/lib/emulators"),))
    assert out.split("\n")[:2] == ["wioe5 ['joined', 'downlink', 'sent'] 51 b'\\xaa'",
                                   "rak3172 ['joined', 'downlink', 'sent'] 51 b'\\xaa'"]
