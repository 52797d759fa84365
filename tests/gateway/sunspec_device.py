"""A SunSpec device on Modbus TCP for the gateway tests, served by `pymodbus`, its register
map laid out from `pysunspec2`'s model definitions (the SunSpec Alliance's JSON): "SunS" at
40000, then the models of its kind, then the end marker.

- solar: models 1, 103 (three-phase inverter), 123 (immediate controls). It produces
  --power-w, or less while WMaxLim_Ena holds it to WMaxLimPct of --rated-w (until
  WMaxLimPct_RvrtTms runs out); its lifetime energy WH grows with it.
- battery: models 1, 103, 124 (storage). It charges or discharges at InWRte/OutWRte % of
  WChaMax as StorCtl_Mod says (until InOutWRte_RvrtTms runs out), its ChaState following.
- meter: models 1, 203. Imports --power-w; TotWhImp grows with it.

Prints one JSON line a second ({"event": "state", ...}) with the points the tests check.

    python sunspec_device.py --kind solar --port 5020 --power-w 4000 --rated-w 6000
"""

import argparse
import asyncio
import json
import os
import time

import sunspec2.mdef as mdef
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartAsyncTcpServer

BASE = 40000
MODELS = {'solar': [1, 103, 123], 'battery': [1, 103, 124], 'meter': [1, 203]}


def definition(model_id):
    path = os.path.join(os.path.dirname(mdef.__file__), 'models', 'json', f'model_{model_id}.json')
    with open(path) as f:
        return json.load(f)


class Device:
    def __init__(self, kind):
        self.store = ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, [0] * 65536))
        self.points = {}
        address = BASE
        self.set(address, [0x5375, 0x6E53])
        address += 2
        for model_id in MODELS[kind]:
            group = definition(model_id)['group']
            offset = 0
            for p in group['points']:
                self.points[(model_id, p['name'])] = address + offset
                offset += p['size']
            self.set(address, [model_id, offset - 2])
            address += offset
        self.set(address, [0xFFFF, 0])
        self.text(1, 'Mn', 'OpenVPP tests')
        self.text(1, 'Md', f'pymodbus {kind}')
        self.text(1, 'SN', 'SN-0001')

    def set(self, address, words):
        self.store.setValues(3, address, words)

    def get(self, address, count=1):
        return self.store.getValues(3, address, count)

    def put(self, model, name, value, signed=False, words=1):
        v = int(value)
        if signed and v < 0:
            v += 1 << (16 * words)
        self.set(self.points[(model, name)], [(v >> (16 * (words - 1 - i))) & 0xFFFF for i in range(words)])

    def read(self, model, name, signed=False):
        v = self.get(self.points[(model, name)])[0]
        return v - 0x10000 if signed and v >= 0x8000 else v

    def text(self, model, name, s):
        size = 16 if name in ('Mn', 'Md', 'SN') else 8
        raw = s.encode().ljust(size * 2, b'\0')
        self.set(self.points[(model, name)], [int.from_bytes(raw[i:i + 2], 'big') for i in range(0, size * 2, 2)])


async def physics(device, args):
    kind = args.kind
    wh, soc = 1_000_000.0, 50.0
    last = time.time()
    enabled_at = {}
    if kind == 'battery':
        device.put(124, 'WChaMax', args.rated_w)
        device.put(124, 'ChaState_SF', -1, signed=True)
        device.put(124, 'MinRsvPct', 10)
        device.put(124, 'InOutWRte_SF', -1, signed=True)
    if kind == 'solar':
        device.put(123, 'WMaxLimPct_SF', -1, signed=True)
    while True:
        await asyncio.sleep(1)
        now = time.time()
        hours = (now - last) / 3600
        last = now
        state = {'event': 'state', 't': now}
        if kind in ('solar', 'battery'):
            if kind == 'solar':
                w = args.power_w
                enabled = device.read(123, 'WMaxLim_Ena') == 1
                revert = device.read(123, 'WMaxLimPct_RvrtTms')
                if enabled:
                    since = enabled_at.setdefault('lim', now)
                    if revert and now - since > revert:
                        device.put(123, 'WMaxLim_Ena', 0)
                        enabled = False
                else:
                    enabled_at.pop('lim', None)
                if enabled:
                    w = min(w, device.read(123, 'WMaxLimPct') / 10 / 100 * args.rated_w)
                state.update(limit_enabled=enabled, limit_pct=device.read(123, 'WMaxLimPct') / 10, revert_secs=revert)
            else:
                mode = device.read(124, 'StorCtl_Mod')
                revert = device.read(124, 'InOutWRte_RvrtTms')
                if mode:
                    since = enabled_at.setdefault('sto', now)
                    if revert and now - since > revert:
                        device.put(124, 'StorCtl_Mod', 0)
                        mode = 0
                else:
                    enabled_at.pop('sto', None)
                out_rate = device.read(124, 'OutWRte', signed=True) / 10 / 100 * args.rated_w
                in_rate = device.read(124, 'InWRte', signed=True) / 10 / 100 * args.rated_w
                w = out_rate if mode & 2 else -in_rate if mode & 1 else 0.0
                soc = min(100.0, max(0.0, soc - w * hours / args.capacity_wh * 100))
                device.put(124, 'ChaState', round(soc * 10))
                state.update(mode=mode, revert_secs=revert, soc=soc)
            wh += max(w, 0) * hours
            device.put(103, 'W', round(w), signed=True)
            device.put(103, 'WH', round(wh), words=2)
            device.put(103, 'St', 4)
            state.update(w=round(w), wh=round(wh))
        else:
            wh += args.power_w * hours
            device.put(203, 'W', args.power_w, signed=True)
            device.put(203, 'TotWhImp', round(wh), words=2)
            device.put(203, 'TotWhExp', 0, words=2)
            state.update(w=args.power_w, import_wh=round(wh))
        print(json.dumps(state), flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--kind', choices=sorted(MODELS), required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--power-w', type=float, default=4000)
    parser.add_argument('--rated-w', type=float, default=6000)
    parser.add_argument('--capacity-wh', type=float, default=10000)
    args = parser.parse_args()
    device = Device(args.kind)
    context = ModbusServerContext(slaves=device.store, single=True)
    asyncio.create_task(physics(device, args))
    await StartAsyncTcpServer(context=context, address=('127.0.0.1', args.port))


if __name__ == '__main__':
    asyncio.run(main())
