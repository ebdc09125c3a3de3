# The node: sensor frames in, authenticated aggregate reports out over
# LoRaWAN, for years, unattended.
#
#     node = Node(node_file, sensor, modem, clock, fs, wdt=wdt, battery=adc_mv, reset_cause="watchdog")
#     node.run()                     # or node.step() from your own loop
#
# One turn of the loop (step) never blocks for long: it feeds the watchdog,
# drains the sensor's frames into the pipeline, closes the interval when
# its time is up (the interval's aggregates go to the persistent queue
# before anything else happens to them), lets the modem make progress, and
# starts an uplink when the send policy allows. Everything the node does
# with time goes through the injected clock and wrap-safe ticks.
#
# Time: the node has no wall clock. Intervals are counted from start-up;
# each report says how long ago its last interval ended (age_s) and the
# gateway places the intervals in time from the receive time. After a
# reset, intervals queued before it have an unknown age: the report says
# so (health bit time_lost) and the gateway places them by sequence number.
#
# What a reset loses: the interval in progress (at most interval_s of
# counts). Finished intervals, the sequence number, cumulative line totals
# and the configuration are on flash.
import binascii

import vistelse_mcodec as mcodec

from vistelse_node import airtime
from vistelse_node import config as node_config
from vistelse_node import health as node_health
from vistelse_node import queue as report_queue
from vistelse_node.clock import ticks_add, ticks_diff
from vistelse_node.modem.base import ModemError, BUSY, DUTY_CYCLE, LENGTH, NOT_JOINED, NO_ACK
from vistelse_node.pipeline import Pipeline
from vistelse_node.release import Release
from vistelse_node.sendpolicy import SendPolicy

FRAMES_PER_TURN = 4           # bounded work per turn keeps the watchdog fed
IDLE_MS = 20                  # LD2450 frames every 100 ms, ToF every 67 ms
RETRY_MS = 30000              # after a refused or failed uplink
BUSY_RETRY_MS = 1000
NO_FIT_RETRY_MS = 600000      # one interval does not fit this data rate: wait for ADR
REJOIN_AFTER_FAILURES = 3     # failed uplinks in a row before a fresh join
DUTY_DEFAULT_WAIT_MS = 60000  # the modem said "duty cycle" without saying how long
# Reports go as unconfirmed uplinks: a LoRaWAN confirmation costs one
# downlink per uplink (288 a day at 5 minutes), far past The Things
# Network's fair use of 10 downlinks a day and a gateway's downlink duty
# cycle. What arrived is told by the gateway's receipts (fPort 3, a few a
# day); until one covers it, a sent interval stays in the queue.
CONFIRMED_UPLINKS = False


class Node:
    def __init__(self, node_file, sensor, modem, clock, fs, wdt=None, battery=None, reset_cause=None,
                 budget_ms=None, log=None):
        self.node_file = node_file
        self.sensor = sensor
        self.modem = modem
        self.clock = clock
        self.wdt = wdt
        self.battery = battery
        self.reset_cause = reset_cause
        self.log = log or (lambda *a: None)
        self.dev_eui = binascii.unhexlify(node_file["dev_eui"])
        self.tag_key = binascii.unhexlify(node_file["tag_key"])
        self.kind = node_file["sensor"]
        self.mount = node_file.get("mount") or {}
        self.config = node_config.ConfigStore(fs, node_file)
        self.queue = report_queue.Queue(fs, can_merge=self._sendable)
        self.health = node_health.Health()
        self.watch = node_health.SensorWatch(clock, self.health)
        self.policy = SendPolicy(clock) if budget_ms is None else SendPolicy(clock, budget_ms)
        cfg = self.config.current
        self.in_force = cfg
        self.release = Release(fs, cfg["min_count"])      # docs/privacy.md: k people per record
        self.release.resume(self.queue.next_seq, self.queue.tot)
        self._build_pipeline(cfg)
        self._set_sensor_mode(cfg["sensor_mode"])
        self._set_orientation(cfg)
        self.pending = None           # accepted configuration, in force from the next interval
        now = clock.ticks_ms()
        self.interval_end = ticks_add(now, cfg["interval_s"] * 1000)
        self.next_try = now
        self.in_flight = None         # (records carried by the uplink, bytes, dr)
        self.batch_limit = 64
        self.fail_streak = 0
        self.sent = 0                 # uplinks handed over since start
        self.rejected = []            # reasons of rejected downlinks (for the REPL and tests)
        self.recovered = 0            # records sent again after a receipt found them missing

    # --- the loop -----------------------------------------------------------------

    def run(self):
        while True:
            self.step()
            self.clock.sleep_ms(IDLE_MS)

    def step(self):
        if self.wdt is not None:
            self.wdt.feed()
        self._read_sensor()
        if self.watch.check():
            self.log("sensor silent: re-initialising")
            self._queue(self.release.flush(), ticks_add(self.interval_end, -self.in_force["interval_s"] * 1000), 0)
            try:
                self.sensor.reinit()
            except OSError as exc:
                self.log("sensor re-initialisation failed:", exc)
        while ticks_diff(self.clock.ticks_ms(), self.interval_end) >= 0:
            self._close_interval()
        self.modem.poll()
        self.modem.maintain()
        event = self.modem.take_event()
        while event is not None:
            self._on_modem(event)
            event = self.modem.take_event()
        self._maybe_send()

    # --- sensor → pipeline ----------------------------------------------------------

    def _read_sensor(self):
        for _ in range(FRAMES_PER_TURN):
            frame = self.sensor.read_frame()
            if frame is None:
                return
            t = self.clock.ticks_ms()
            if self.kind == "ld2450":
                n = self.pipeline.feed_ld2450(frame, t)
                self.watch.frame(node_health.radar_blocked(self.pipeline.detections, n))
            else:
                mm, status = frame
                self.pipeline.feed_tof(mm, status, t)
                self.watch.frame(node_health.tof_blocked(mm, status))

    def _build_pipeline(self, cfg):
        mount = dict(self.mount)
        if self.kind == "vl53l5cx":
            mount["resolution"] = 4 if cfg["sensor_mode"] == "tof_4x4" else 8
        self.pipeline = Pipeline(self.kind, [z for z in cfg["zones"]], [(a, b) for a, b in cfg["lines"]],
                                 0, cfg["still_hold_s"], mount)     # withholding is the release stage's

    def _set_sensor_mode(self, mode):
        if hasattr(self.sensor, "set_mode"):
            self.sensor.set_mode(mode)

    def _set_orientation(self, cfg):
        o = cfg.get("orientation")
        if o is not None and hasattr(self.sensor, "set_orientation"):
            self.sensor.set_orientation(o["rotate"], o["mirror"])

    def _turned(self, new, old):
        """A ToF configuration whose grid differs: another mode or orientation."""
        return self.kind == "vl53l5cx" and (new["sensor_mode"] != old["sensor_mode"]
                                            or new.get("orientation") != old.get("orientation"))

    # --- intervals ------------------------------------------------------------------

    def _close_interval(self):
        end = self.interval_end
        cfg = self.in_force
        layout_changes = self.pending is not None and (
            self.pending["zones"] != cfg["zones"] or self.pending["lines"] != cfg["lines"]
            or self._turned(self.pending, cfg))
        if layout_changes:
            self.pipeline.finish(end)         # visits in progress end with the old layout
        interval = self.pipeline.close_interval(end)
        seq = self._queue(self.release.take(interval, cfg["interval_s"], self.queue.next_seq), end,
                          cfg["interval_s"])
        if self.queue.merged:
            self.health.raise_flag("queue_merged")
            self.queue.merged = False
        if seq is None:
            self.log("interval held: fewer than", self.release.k, "people so far")
        else:
            self.log("interval", seq, "queued;", len(self.queue), "waiting")
        if self.pending is not None:
            self._put_in_force(self.pending, layout_changes)
            self.pending = None
        self.interval_end = ticks_add(end, self.in_force["interval_s"] * 1000)

    def _queue(self, records, end, interval_s):
        """Queue what the release stage lets go (records end one interval apart)."""
        seq = None
        for i in range(len(records)):
            seq = self.queue.append_record(records[i], ticks_add(end, -(len(records) - 1 - i) * interval_s * 1000))
        return seq

    def _put_in_force(self, cfg, layout_changes):
        if self._turned(cfg, self.in_force):
            # 4x4 or 8x8 frames, or the grid turned: a new floor model
            self._build_pipeline(cfg)
            self._set_orientation(cfg)
        elif layout_changes:
            self.pipeline.configure([z for z in cfg["zones"]], [(a, b) for a, b in cfg["lines"]],
                                    0, cfg["still_hold_s"])
        else:
            self.pipeline.configure(still_hold_s=cfg["still_hold_s"])
        self.release.set_k(cfg["min_count"])
        if cfg["sensor_mode"] != self.in_force["sensor_mode"]:
            self._set_sensor_mode(cfg["sensor_mode"])
        self.in_force = cfg
        self.log("configuration", cfg["config_version"], "in force")

    # --- downlinks ------------------------------------------------------------------

    def _on_receipt(self, data):
        try:
            r = mcodec.decode_downlink(data, mcodec.FPORT_RECEIPT, self.dev_eui, self.tag_key)
        except mcodec.PayloadError as exc:
            self.log("receipt rejected:", exc)
            return
        done = self.queue.apply_receipt(r["receipt"], r["next_seq"], r["stored_seq"])
        if done is None:
            self.log("receipt", r["receipt"], "is not newer than", self.queue.receipt_no, "(a repeat): ignored")
            return
        self.recovered += done[1]
        self.log("receipt %d: %d intervals stored, %d records to send again" % (r["receipt"], done[0], done[1]))

    def _on_downlink(self, port, data):
        if port == mcodec.FPORT_RECEIPT:
            self._on_receipt(data)
            return
        if port != mcodec.FPORT_CONFIG:
            self.log("downlink on fPort", port, "ignored")
            return
        try:
            wanted = mcodec.decode_downlink(data, port, self.dev_eui, self.tag_key)
            if wanted["config_version"] == self.config.current["config_version"]:
                self.log("configuration", wanted["config_version"], "already accepted (a repeat)")
                return
            self.pending = self.config.apply(wanted)
        except (mcodec.PayloadError, node_config.ConfigError) as exc:
            reason = str(exc)
            self.rejected.append(reason)
            del self.rejected[:-4]
            self.health.raise_flag("config_rejected")
            self.log("configuration rejected:", reason)
            return
        self.log("configuration", self.pending["config_version"], "accepted")

    # --- uplinks --------------------------------------------------------------------

    def _on_modem(self, event):
        kind = event[0]
        if kind == "downlink":
            self._on_downlink(event[1], event[2])
        elif kind == "sent":
            if self.in_flight is None:
                return                        # not ours (a modem left sending before a restart)
            records, nbytes, dr = self.in_flight
            self.in_flight = None
            if CONFIRMED_UPLINKS and event[1] is not True:
                self.queue.mark_unsent(records)   # no ack: not proven sent
                self._failed(NO_ACK)
                return
            self.health.reported()
            self.reset_cause = None
            self.fail_streak = 0
            self.sent += 1
            self.batch_limit = 64
            self.modem.data_rate()            # ADR may have moved it
        elif kind == "send_failed":
            if self.in_flight is not None:
                self.queue.mark_unsent(self.in_flight[0])
            self.in_flight = None
            self._failed(event[1])
        elif kind == "join_failed":
            self.health.raise_flag("modem_trouble")
            self.log("join failed:", event[1])
        elif kind == "joined":
            self.log("joined")
            self.modem.data_rate()

    def _failed(self, cause):
        self.health.raise_flag("modem_trouble")
        self.fail_streak += 1
        self.next_try = ticks_add(self.clock.ticks_ms(), RETRY_MS)
        self.log("uplink failed:", cause)
        if self.fail_streak >= REJOIN_AFTER_FAILURES:
            self.fail_streak = 0
            self.modem.rejoin()

    def build_report(self, records, worst_case=False, intervals=None):
        """The report for the oldest `records` of the queue. worst_case: the
        largest status it could carry (for sizing a record, without side
        effects). intervals: the records' intervals (interval_from_record)
        when the caller already has them."""
        cfg = self.in_force
        if worst_case:
            age, flags = 0xFFFFFFFF, list(node_health.FLAGS)
        else:
            last_end = self.queue.end_tick(records[-1])
            age = None if last_end is None else max(0, ticks_diff(self.clock.ticks_ms(), last_end) // 1000)
            flags = self.health.flags()
        status = {"battery_mv": 0xFFFF if worst_case else (self.battery() if self.battery else 0), "health": flags,
                  "config_version": cfg["config_version"], "reset_cause": "power_on" if worst_case else self.reset_cause}
        return {"seq": records[0][report_queue.SEQ], "interval_s": records[0][report_queue.INTERVAL_S],
                "age_s": age, "status": status,
                "intervals": intervals if intervals is not None
                else [report_queue.interval_from_record(r) for r in records]}

    def _sendable(self, record):
        """A record one uplink at the current data rate can carry (without its breakdowns)."""
        report = self.build_report([report_queue.without_breakdowns(record)], worst_case=True)
        try:
            frame = mcodec.encode_uplink(report, self.dev_eui, self.tag_key)
        except mcodec.PayloadError:
            return False
        dr = self.modem.dr
        return len(frame) <= airtime.max_payload(0 if dr is None else dr)

    def _frame(self, dr):
        """The largest batch of oldest intervals that fits one uplink at dr."""
        room = self.modem.max_payload()
        records = self.queue.batch(self.batch_limit)
        best = None, None
        # A report grows with every interval it carries: a binary search
        # encodes ~log2(n) candidates where a linear one made n, whose
        # garbage (tens of KB with a backlog) a small heap cannot spare; the
        # intervals' dicts are built once for all candidates.
        intervals = [report_queue.interval_from_record(r) for r in records]
        lo, hi = 1, len(records)
        while lo <= hi:
            n = (lo + hi) // 2
            try:
                frame = mcodec.encode_uplink(self.build_report(records[:n], intervals=intervals[:n]),
                                             self.dev_eui, self.tag_key)
            except mcodec.PayloadError:
                frame = None              # past the largest LoRaWAN payload
            if frame is not None and len(frame) <= room:
                best = records[:n], frame
                lo = n + 1
            else:
                hi = n - 1
        if best[0] is None and records:
            # One interval does not fit (slow data rate, many zones, merged
            # spans): send its counts without the breakdowns. An empty dwell
            # histogram means "not sent" on the wire, as for small counts.
            bare = report_queue.without_breakdowns(records[0])
            try:
                frame = mcodec.encode_uplink(self.build_report([bare]), self.dev_eui, self.tag_key)
            except mcodec.PayloadError:
                return best
            if len(frame) <= room:
                best = [bare], frame
        return best

    def _maybe_send(self):
        if (self.in_flight is not None or not self.queue.unsent() or not self.modem.joined
                or self.modem.busy() or ticks_diff(self.clock.ticks_ms(), self.next_try) < 0):
            return
        dr = self.modem.dr if self.modem.dr is not None else self.modem.data_rate()
        dr = 0 if dr is None else dr
        records, frame = self._frame(dr)
        if records is None:
            self.log("one interval does not fit a DR%d uplink: waiting for a faster data rate" % dr)
            self.next_try = ticks_add(self.clock.ticks_ms(), NO_FIT_RETRY_MS)
            return
        wait = self.policy.wait_ms(len(frame), dr)
        if wait != 0:
            self.next_try = ticks_add(self.clock.ticks_ms(), wait if wait > 0 else NO_FIT_RETRY_MS)
            return
        # A record sent bare (without breakdowns) is the queued record on the
        # gateway's side too: it is marked sent as queued.
        queued = self.queue.batch(len(records))[:len(records)]
        self.queue.mark_sent(queued)          # on flash before the hand-over
        try:
            self.modem.send(mcodec.FPORT_REPORT, frame, confirmed=CONFIRMED_UPLINKS)
        except ModemError as exc:
            if exc.on_air:                    # the modem sent an empty uplink to flush MAC commands
                self.policy.spent(0, dr)
            self.queue.mark_unsent(queued)
            self._refused(exc, len(records))
            return
        self.policy.spent(len(frame), dr)
        self.in_flight = (queued, len(frame), dr)
        self.log("uplink: %d intervals from %d, %d bytes at DR%d"
                 % (len(records), records[0][report_queue.SEQ], len(frame), dr))

    def _refused(self, exc, n):
        now = self.clock.ticks_ms()
        if exc.cause == DUTY_CYCLE:
            self.policy.hold(exc.wait_ms or DUTY_DEFAULT_WAIT_MS)
        elif exc.cause == BUSY:
            self.next_try = ticks_add(now, BUSY_RETRY_MS)
        elif exc.cause == LENGTH:
            # MAC commands waiting in FOpts took room: send fewer intervals
            if n > 1:
                self.batch_limit = n - 1
            else:
                self.next_try = ticks_add(now, RETRY_MS)
        elif exc.cause == NOT_JOINED:
            self.log("modem lost its session: joining again")
        else:
            self._failed(exc.cause)
