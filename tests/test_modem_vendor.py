"""The modem drivers and their emulators against the vendors' own sources:
RUI3 (github.com/RAKWireless/RAK-STM32-RUI, cores/STM32WLE/component/
service/) for the RAK3172 and Seeed's LoRa-E5 AT Command Specification for
the Wio-E5. Each test names the vendor behaviour it holds both to."""
import pytest

from node_fakes import ScriptedUart
from test_node_modem import DEV_EUI, APP_KEY, joined, make, wait_event
from vistelse_node.clock import SimClock
from vistelse_node.modem import base
from vistelse_node.modem.base import ModemError
from vistelse_node.modem.wioe5 import WioE5
from vistelse_tools.emulators import rak3172 as emu_rak, session as emu_session


def until_quiet(clock, modem, ms):
    events = []
    for _ in range(ms // 100):
        modem.poll()
        ev = modem.take_event()
        while ev is not None:
            events.append(ev)
            ev = modem.take_event()
        clock.advance(100)
    return events


# --- RAK3172 / RUI3 ----------------------------------------------------------------

def test_rui3_join_count_is_retries_after_the_first_attempt():
    """service_lora.c MlmeConfirm: ++retry_cnt > max_cnt stops. The emulator
    makes N+1 attempts for AT+JOIN=1:0:10:N and refuses a join while its own
    retry is pending; the driver asks for one attempt."""
    clock, session, emu, modem = make("rak3172-rui3v4", join_failures=10)
    emu.feed(b"AT+JOIN=1:0:10:1\r\n")
    until_quiet(clock, modem, 12000)                 # first attempt failed, retry in 10 s
    emu.feed(b"AT+JOIN=1:0:10:0\r\n")
    assert emu.output().endswith(b"AT_BUSY_ERROR\r\n")
    until_quiet(clock, modem, 30000)
    assert session.joins == 2                        # ":1" = two attempts
    clock2, session2, emu2, modem2 = make("rak3172-rui3v4", join_failures=10)
    modem2.setup(DEV_EUI, "0000000000000000", APP_KEY)
    modem2.maintain()
    assert wait_event(clock2, modem2)[0] == "join_failed"
    until_quiet(clock2, modem2, 60000)               # no maintain(): the module must not retry by itself
    assert session2.joins == 1
    assert (">", "AT+JOIN=1:0:10:0") in emu2.log


def test_rui3_nwm_reboots_on_every_set_so_it_is_set_only_when_needed():
    """atcmd_p2p.c At_NwkWorkMode: "OK" without a line ending, then a reboot."""
    clock = SimClock()
    session = emu_session.Session(lambda: clock.elapsed_ms)
    emu = emu_rak.Rak3172(session)
    emu.feed(b"AT+NWM=1\r\n")
    assert emu.output() == b"OK" and emu.reboots == 1
    emu.feed(b"AT\r\n")
    assert emu.output() == b""                       # restarting: nobody listens
    clock.elapsed_ms += emu_rak.REBOOT_MS
    emu.poll()
    # the driver on a module already in LoRaWAN mode: no reboot
    clock, session, emu, modem = make("rak3172-rui3v4")
    modem.setup(DEV_EUI, "0000000000000000", APP_KEY)
    assert emu.reboots == 0 and (">", "AT+NWM=1") not in emu.log
    # ... and on one left in P2P mode: one reboot, then the set-up goes on
    clock, session, emu, modem = make("rak3172-rui3v4")
    emu.settings["NWM"] = "0"
    clock.sleep_ms = clock.advance                   # the driver's waits pass simulated time
    modem.setup(DEV_EUI, "0000000000000000", APP_KEY)
    assert emu.reboots == 1 and emu.settings["NWM"] == "1" and emu.settings["APPKEY"] == APP_KEY.upper()
    modem.maintain()
    assert wait_event(clock, modem) == ("joined",)


def test_rui3_tx_done_is_printed_even_when_nothing_went_on_air():
    """service_lora.c McpsConfirm prints +EVT:TX_DONE for an unconfirmed
    uplink whatever its status; only a confirmed uplink's ack is proof."""
    got = []
    clock, session, emu, modem = joined("rak3172-rui3v4", tx_fail_rate=1.0, on_uplink=got.append)
    modem.send(1, b"\x01")
    assert wait_event(clock, modem) == ("sent", None) and got == []
    modem.send(1, b"\x01", confirmed=True)
    assert wait_event(clock, modem) == ("sent", False) and got == []
    assert emu.log[-1] == ("<", "+EVT:SEND_CONFIRMED_FAILED(2)")


def test_rui3_over_length_send_spends_an_empty_uplink():
    """service_lora.c service_lora_send: QueryTxPossible fails -> an empty
    uplink goes on air, then AT_PARAM_ERROR."""
    clock, session, emu, modem = joined("rak3172-rui3v4", dr=0)
    with pytest.raises(ModemError) as exc:
        modem.send(1, bytes(52))
    assert exc.value.cause == base.LENGTH and exc.value.on_air
    assert session.mac_only_uplinks == 1 and session.airtime_us_total > 0
    with pytest.raises(ModemError) as exc:          # the MAC is busy with the empty uplink
        modem.send(1, bytes(10))
    assert exc.value.cause == base.BUSY


def test_rui3_sleep_answers_after_waking_and_the_late_ok_confuses_nothing():
    """atcmd_sleep.c At_Sleep: udrv_sleep_ms() before the OK."""
    clock, session, emu, modem = joined("rak3172-rui3v4", dr=3)
    assert modem.sleep() and emu.asleep
    assert emu.output() == b""                      # no answer while asleep
    modem.wake()
    assert not emu.asleep
    assert modem.data_rate() == 3                   # not fooled by the late OK
    modem.send(1, b"\x01", confirmed=True)
    assert wait_event(clock, modem) == ("sent", True)


# --- Wio-E5 / LoRa-E5 AT specification ----------------------------------------------

def test_wioe5_rejoin_forces_a_new_session():
    """AT+JOIN when joined answers "Joined already"; AT+JOIN=FORCE rejoins."""
    clock, session, emu, modem = joined("wioe5")
    modem.rejoin()
    modem.maintain()
    assert wait_event(clock, modem) == ("joined",)
    assert (">", "AT+JOIN=FORCE") in emu.log and session.joins == 2


def test_wioe5_length_error_0_flushes_mac_commands_with_an_empty_msg():
    """"Length error 0": MAC commands that do not fit FOpts must go alone."""
    clock, session, emu, modem = joined("wioe5", dr=3)
    session.fopts = 20
    with pytest.raises(ModemError) as exc:
        modem.send(1, b"\x01")
    assert exc.value.cause == base.LENGTH and exc.value.on_air
    assert (">", "AT+MSG") in emu.log and session.mac_only_uplinks == 1 and session.fopts == 0
    until_quiet(clock, modem, 5000)
    clock.advance(session.wait_ms())
    modem.send(1, b"\x01")
    assert wait_event(clock, modem) == ("sent", None)


@pytest.mark.parametrize("reply, cause", [
    ("+MSGHEX: No free channel", base.DUTY_CYCLE),
    ("+MSGHEX: DR error", base.ERROR),
    ("+MSGHEX: No band in 2345ms", base.DUTY_CYCLE),
    ("+MSGHEX: Please join network first", base.NOT_JOINED),
    ("+MSGHEX: LoRaWAN modem is busy", base.BUSY),
    ("+MSGHEX: Length error 12", base.LENGTH),
])
def test_wioe5_refusals_are_classified(reply, cause):
    def wio(data):
        return b"+PORT: 2\r\n" if data.startswith(b"AT+PORT") else reply.encode() + b"\r\n"
    modem = WioE5(ScriptedUart(wio), SimClock())
    modem.joined = True
    with pytest.raises(ModemError) as exc:
        modem.send(2, b"\x01")
    assert exc.value.cause == cause
    if reply.endswith("ms"):
        assert exc.value.wait_ms == 2345
