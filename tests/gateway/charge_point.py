"""A charge point for the gateway tests, built on the Python `ocpp` library (OCPP 1.6J or
2.0.1): boots, starts a transaction, sends meter values (energy register, power, the car's
SoC) every --meter-secs, and charges at the lower of its power and the limit of the last
charging profile it accepted. It prints one JSON line per event on stdout, and stops the
transaction (final meter value) when a line `stop` or end of file arrives on stdin.

    python charge_point.py --url ws://127.0.0.1:9000/ocpp/CP-1 --id CP-1 --password ... --version 1.6
"""

import argparse
import asyncio
import base64
import json
import ssl
import sys
import time
from datetime import datetime, timezone

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201


def emit(**event):
    print(json.dumps(event), flush=True)


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Car:
    """The charging session: register in Wh, power in W, state of charge in %."""

    def __init__(self, args):
        self.args = args
        self.register = float(args.meter_start)
        self.soc = args.soc
        self.limit_w = None
        self.last = time.time()

    def power(self):
        p = self.args.power_w
        return p if self.limit_w is None else max(0.0, min(p, self.limit_w))

    def advance(self):
        t = time.time()
        wh = self.power() * (t - self.last) / 3600.0
        self.register += wh
        self.soc = min(100.0, self.soc + wh / self.args.capacity_wh * 100.0)
        self.last = t

    def take_profile(self, unit, limit, phases=3):
        if self.args.reject_profiles:
            return "Rejected"
        self.advance()
        limit = float(limit)
        self.limit_w = limit * 230.0 * phases if unit == "A" else limit
        emit(event="profile", unit=unit, limit=limit, limit_w=self.limit_w)
        return "Accepted"

    def clear(self):
        self.advance()
        self.limit_w = None
        emit(event="cleared")


class CP16(ChargePoint16):
    car: Car

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id, cs_charging_profiles, **_):
        schedule = cs_charging_profiles["charging_schedule"]
        period = schedule["charging_schedule_period"][0]
        return result16.SetChargingProfile(status=self.car.take_profile(schedule["charging_rate_unit"], period["limit"]))

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **_):
        self.car.clear()
        return result16.ClearChargingProfile(status="Accepted")

    def sampled(self):
        car = self.car
        return [{
            "timestamp": now(),
            "sampledValue": [
                {"value": str(int(car.register)), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": str(round(car.power())), "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": str(round(car.soc)), "context": "Sample.Periodic", "measurand": "SoC", "location": "EV", "unit": "Percent"},
            ],
        }]

    async def session(self, stopping):
        car = self.car
        await self.call(call16.BootNotification(charge_point_model="TestCP", charge_point_vendor="OpenVPP tests"))
        await self.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        await self.call(call16.Authorize(id_tag="TAG1"))
        started = await self.call(call16.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=int(car.register), timestamp=now()))
        tx = started.transaction_id
        start_register = int(car.register)
        await self.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        emit(event="started", transaction=tx, meter_start=start_register)
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), self.car.args.meter_secs)
            except asyncio.TimeoutError:
                pass
            car.advance()
            if stopping.is_set():
                break
            await self.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=self.sampled()))
            emit(event="meter", register_wh=int(car.register), power_w=round(car.power()))
        car.advance()
        stop_register = int(car.register)
        await self.call(call16.StopTransaction(meter_stop=stop_register, timestamp=now(), transaction_id=tx, reason="Local"))
        emit(event="stopped", meter_start=start_register, meter_stop=stop_register)


class CP201(ChargePoint201):
    car: Car

    @on("SetChargingProfile")
    def on_set_charging_profile(self, evse_id, charging_profile, **_):
        schedule = charging_profile["charging_schedule"][0]
        period = schedule["charging_schedule_period"][0]
        return result201.SetChargingProfile(status=self.car.take_profile(schedule["charging_rate_unit"], period["limit"]))

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **_):
        self.car.clear()
        return result201.ClearChargingProfile(status="Accepted")

    def sampled(self):
        car = self.car
        return [{
            "timestamp": now(),
            "sampledValue": [
                {"value": int(car.register), "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": round(car.power()), "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
                {"value": round(car.soc), "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}},
            ],
        }]

    async def session(self, stopping):
        car = self.car
        await self.call(call201.BootNotification(charging_station={"model": "TestCS", "vendorName": "OpenVPP tests"}, reason="PowerUp"))
        await self.call(call201.StatusNotification(timestamp=now(), connector_status="Occupied", evse_id=1, connector_id=1))
        await self.call(call201.Authorize(id_token={"idToken": "TAG2", "type": "ISO14443"}))
        tx = "tx-%d" % int(time.time())
        seq = 0
        start_register = int(car.register)
        await self.call(call201.TransactionEvent(
            event_type="Started", timestamp=now(), trigger_reason="CablePluggedIn", seq_no=seq,
            transaction_info={"transactionId": tx, "chargingState": "Charging"}, evse={"id": 1, "connectorId": 1},
            id_token={"idToken": "TAG2", "type": "ISO14443"}, meter_value=self.sampled()))
        emit(event="started", transaction=tx, meter_start=start_register)
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), self.car.args.meter_secs)
            except asyncio.TimeoutError:
                pass
            car.advance()
            if stopping.is_set():
                break
            seq += 1
            # Alternately as a transaction update and as a plain MeterValues message.
            if seq % 2:
                await self.call(call201.TransactionEvent(
                    event_type="Updated", timestamp=now(), trigger_reason="MeterValuePeriodic", seq_no=seq,
                    transaction_info={"transactionId": tx, "chargingState": "Charging"}, meter_value=self.sampled()))
            else:
                await self.call(call201.MeterValues(evse_id=1, meter_value=self.sampled()))
            emit(event="meter", register_wh=int(car.register), power_w=round(car.power()))
        car.advance()
        stop_register = int(car.register)
        await self.call(call201.TransactionEvent(
            event_type="Ended", timestamp=now(), trigger_reason="StopAuthorized", seq_no=seq + 1,
            transaction_info={"transactionId": tx, "stoppedReason": "Local"}, meter_value=self.sampled()))
        emit(event="stopped", meter_start=start_register, meter_stop=stop_register)


async def watch_stdin(stopping):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "stop":
            stopping.set()
            return


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--version", choices=["1.6", "2.0.1"], required=True)
    parser.add_argument("--power-w", type=float, default=7400.0)
    parser.add_argument("--meter-secs", type=float, default=5.0)
    parser.add_argument("--meter-start", type=int, default=1_000_000)
    parser.add_argument("--soc", type=float, default=40.0)
    parser.add_argument("--capacity-wh", type=float, default=60_000.0)
    parser.add_argument("--cafile", help="CA certificate for wss://")
    parser.add_argument("--reject-profiles", action="store_true")
    args = parser.parse_args()
    token = base64.b64encode(f"{args.id}:{args.password}".encode()).decode()
    ssl_context = ssl.create_default_context(cafile=args.cafile) if args.url.startswith("wss://") else None
    subprotocol = "ocpp1.6" if args.version == "1.6" else "ocpp2.0.1"
    async with websockets.connect(
        args.url, subprotocols=[subprotocol], additional_headers={"Authorization": f"Basic {token}"}, ssl=ssl_context
    ) as ws:
        cp = (CP16 if args.version == "1.6" else CP201)(args.id, ws)
        cp.car = Car(args)
        stopping = asyncio.Event()
        listener = asyncio.create_task(cp.start())
        stdin = asyncio.create_task(watch_stdin(stopping))
        await cp.session(stopping)
        emit(event="done")
        listener.cancel()
        stdin.cancel()


if __name__ == "__main__":
    asyncio.run(main())
