"""Smart meter telegrams for the gateway tests, each with what a third-party library reads
from it: DSMR P1 telegrams parsed by `dsmr-parser`, SML frames by `smllib`. Prints one JSON
line per case: {"protocol", "source", "hex", "expected": {"import_wh", "export_wh",
"power_w"} or null, "error": the library's refusal or null}.

Sources: the DSMR 4.2 example telegram of dsmr-parser's test suite and two frames of
real meters from smllib's (published sample data); telegrams and frames generated here with
random values, their checksums computed by the libraries' own CRC functions; and each of
them corrupted by one byte.

    python meter_telegrams.py [--seed N]
"""

import argparse
import json
import random
from binascii import a2b_hex

from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser
from smllib.crc import x25
from smllib.reader import SmlStreamReader

# dsmr-parser, test/example_telegrams.py (TELEGRAM_V4_2).
DSMR_V4_2 = (
    '/KFM5KAIFA-METER\r\n\r\n1-3:0.2.8(42)\r\n0-0:1.0.0(161113205757W)\r\n'
    '0-0:96.1.1(3960221976967177082151037881335713)\r\n1-0:1.8.1(001581.123*kWh)\r\n'
    '1-0:1.8.2(001435.706*kWh)\r\n1-0:2.8.1(000000.000*kWh)\r\n1-0:2.8.2(000000.000*kWh)\r\n'
    '0-0:96.14.0(0002)\r\n1-0:1.7.0(02.027*kW)\r\n1-0:2.7.0(00.000*kW)\r\n0-0:96.7.21(00015)\r\n'
    '0-0:96.7.9(00007)\r\n1-0:99.97.0(3)(0-0:96.7.19)(000104180320W)(0000237126*s)(000101000001W)'
    '(2147583646*s)(000102000003W)(2317482647*s)\r\n1-0:32.32.0(00000)\r\n1-0:52.32.0(00000)\r\n'
    '1-0:72.32.0(00000)\r\n1-0:32.36.0(00000)\r\n1-0:52.36.0(00000)\r\n1-0:72.36.0(00000)\r\n'
    '0-0:96.13.1()\r\n0-0:96.13.0()\r\n1-0:31.7.0(000*A)\r\n1-0:51.7.0(006*A)\r\n1-0:71.7.0(002*A)\r\n'
    '1-0:21.7.0(00.170*kW)\r\n1-0:22.7.0(00.000*kW)\r\n1-0:41.7.0(01.247*kW)\r\n1-0:42.7.0(00.000*kW)\r\n'
    '1-0:61.7.0(00.209*kW)\r\n1-0:62.7.0(00.000*kW)\r\n0-1:24.1.0(003)\r\n'
    '0-1:96.1.0(4819243993373755377509728609491464)\r\n0-1:24.2.1(161129200000W)(00981.443*m3)\r\n'
    '!6796\r\n'
)
# smllib, tests/test_complete.py: frames of two real meters.
SML_REAL = [
    '1b1b1b1b0101010176051c414c02620062007263010176010102310b0a01445a47000282c0b07262016505471c2a620263f9380'
    '076051d414c02620062007263070177010b0a01445a47000282c0b0070100620affff7262016505471c2a747707010060320101'
    '0172620162006200520004445a470177070100600100ff017262016200620052000b0a01445a47000282c0b0017707010001080'
    '0ff641c01047262016200621e520363344f0177070100020800ff017262016200621e520362000101016393770076051e414c02'
    '6200620072630201710163e6ba00000000001b1b1b1b1a04dad0',
    '1b1b1b1b0101010176040000016200620072650000010176010107000002dba23c0b0a01484c5902000424a0010163945b00760'
    '40000026200620072650000070177010b0a01484c5902000424a00101f10477070100603201010101010104484c590177070100'
    '600100ff010101010b0a01484c5902000424a00177070100010800ff65001c81046502dba23d621e52ff6502aea132017707010'
    '0020800ff65001c81046502dba23d621e52ff62000177070100100700ff0101621b52005300890177070100200700ff01016223'
    '52ff6309280177070100340700ff0101622352ff6309290177070100480700ff0101622352ff63092201770701001f0700ff010'
    '1622152fe62290177070100330700ff0101622152fe624e0177070100470700ff0101622152fe622e0177070100510701ff0101'
    '6208520062f00177070100510702ff01016208520062780177070100510704ff010162085200630110017707010051070fff010'
    '162085200630138017707010051071aff01016208520063011101770701000e0700ff0101622c52ff6301f40177070100000200'
    '000101010109312e30322e3030370177070100605a02010101010105413031410177070100600500ff0101010165001c8104010'
    '10163fc1e00760400000362006200726500000201710163e8230000001b1b1b1b1a0222ed',
]


def dsmr_expected(text):
    """What dsmr-parser reads: import and export over the tariffs, net power, in Wh and W."""
    telegram = TelegramParser(telegram_specifications.V5).parse(text, throw_ex=True)
    kwh = lambda name: getattr(telegram, name).value * 1000  # noqa: E731
    return {
        'import_wh': float(kwh('ELECTRICITY_USED_TARIFF_1') + kwh('ELECTRICITY_USED_TARIFF_2')),
        'export_wh': float(kwh('ELECTRICITY_DELIVERED_TARIFF_1') + kwh('ELECTRICITY_DELIVERED_TARIFF_2')),
        'power_w': float(kwh('CURRENT_ELECTRICITY_USAGE') - kwh('CURRENT_ELECTRICITY_DELIVERY')),
    }


def dsmr_generated(rng):
    t1, t2 = rng.randrange(0, 10**9), rng.randrange(0, 10**9)
    e1, e2 = rng.randrange(0, 10**8), rng.randrange(0, 10**8)
    p_in, p_out = (rng.randrange(0, 25_000), 0) if rng.random() < 0.6 else (0, rng.randrange(0, 12_000))
    body = (
        '/XMX5LGBBFG1012463390\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(261206101500W)\r\n'
        '0-0:96.1.1(4530303331303033303031363939353135)\r\n'
        f'1-0:1.8.1({t1 // 1000:06d}.{t1 % 1000:03d}*kWh)\r\n1-0:1.8.2({t2 // 1000:06d}.{t2 % 1000:03d}*kWh)\r\n'
        f'1-0:2.8.1({e1 // 1000:06d}.{e1 % 1000:03d}*kWh)\r\n1-0:2.8.2({e2 // 1000:06d}.{e2 % 1000:03d}*kWh)\r\n'
        '0-0:96.14.0(0001)\r\n'
        f'1-0:1.7.0({p_in // 1000:02d}.{p_in % 1000:03d}*kW)\r\n1-0:2.7.0({p_out // 1000:02d}.{p_out % 1000:03d}*kW)\r\n'
        '0-0:96.7.21(00004)\r\n0-0:96.7.9(00002)\r\n1-0:99.97.0(0)(0-0:96.7.19)\r\n'
        '1-0:32.32.0(00000)\r\n1-0:32.36.0(00000)\r\n0-0:96.13.0()\r\n1-0:32.7.0(229.0*V)\r\n'
        '1-0:31.7.0(003*A)\r\n1-0:21.7.0(00.701*kW)\r\n1-0:22.7.0(00.000*kW)\r\n!'
    )
    return body + f'{TelegramParser.crc16(body):04X}\r\n'


def tl(kind, size):
    """An SML type-length field for a value of `size` bytes (`kind` 0x00, 0x50, 0x60)."""
    if size + 1 < 16:
        return bytes([kind | (size + 1)])
    total = size + 2
    return bytes([0x80 | kind | (total >> 4), total & 0x0F])


def octets(b):
    return tl(0x00, len(b)) + b


def uint(v, width):
    return tl(0x60, width) + v.to_bytes(width, 'big')


def sint(v, width):
    return tl(0x50, width) + v.to_bytes(width, 'big', signed=True)


def lst(items):
    return bytes([0x70 | len(items)]) + b''.join(items)


NONE = b'\x01'


def message(txid, tag, body):
    head = lst([octets(txid), uint(0, 1), uint(0, 1), lst([uint(tag, 2), body])])
    # The message's own CRC field, then its end: the message list has six elements.
    raw = bytes([0x76]) + head[1:]
    return raw + uint(x25.get_crc(raw), 2) + b'\x00'


def sml_frame(entries, server_id=b'\x0a\x01EMH\x00\x00\x12\x34\x56'):
    values = [lst([octets(obis), NONE, NONE, uint(unit, 1), sint(scaler, 1), value, NONE]) for obis, unit, scaler, value in entries]
    payload = (
        message(b'\x01\x02', 0x0101, lst([NONE, NONE, octets(b'\x00\x01\x02'), octets(server_id), NONE, NONE]))
        + message(b'\x01\x03', 0x0701, lst([NONE, octets(server_id), NONE, NONE, lst(values), NONE, NONE]))
        + message(b'\x01\x04', 0x0201, lst([NONE]))
    )
    padding = (-len(payload)) % 4
    payload += b'\x00' * padding
    escaped = b''.join(
        payload[i:i + 4] * (2 if payload[i:i + 4] == b'\x1b' * 4 else 1) for i in range(0, len(payload), 4)
    )
    head = b'\x1b' * 4 + b'\x01' * 4 + escaped + b'\x1b' * 4 + bytes([0x1a, padding])
    return head + x25.get_crc(head).to_bytes(2, 'big')


def sml_generated(rng, escaped=False):
    import_raw, export_raw = rng.randrange(0, 2**40), rng.randrange(0, 2**36)
    power = rng.randrange(-15_000, 30_000)
    entries = [
        (bytes([1, 0, 1, 8, 0, 255]), 30, -1, uint(import_raw, 8)),
        (bytes([1, 0, 2, 8, 0, 255]), 30, -1, uint(export_raw, 5)),
        (bytes([1, 0, 16, 7, 0, 255]), 27, 0, sint(power, 4)),
    ]
    server = b'\x1b' * 12 if escaped else b'\x0a\x01EMH\x00\x00\x12\x34\x56'
    return sml_frame(entries, server)


def sml_expected(frame):
    reader = SmlStreamReader()
    reader.add(frame)
    parsed = reader.get_frame()
    assert parsed is not None, 'smllib found no frame'
    parsed.parse_frame()
    values = {e.obis.obis_short: e.get_value() for e in parsed.get_obis()}
    tariff_sum = lambda c: sum(v for k, v in values.items() if k in (f'{c}.8.1', f'{c}.8.2')) if any(  # noqa: E731
        k in values for k in (f'{c}.8.1', f'{c}.8.2')) else None
    pick = lambda key, fallback=None: float(values[key]) if key in values else fallback  # noqa: E731
    return {
        'import_wh': pick('1.8.0', tariff_sum(1)),
        'export_wh': pick('2.8.0', tariff_sum(2)),
        'power_w': pick('16.7.0'),
    }


def case(protocol, source, data, expect):
    try:
        expected, error = expect(), None
    except Exception as e:  # the library's refusal
        expected, error = None, f'{type(e).__name__}: {e}'
    print(json.dumps({'protocol': protocol, 'source': source, 'hex': data.hex(), 'expected': expected, 'error': error}))


def corrupt(data, rng, protected=0):
    """One byte changed inside the body (not in the first `protected` bytes)."""
    i = rng.randrange(protected, len(data) - 8)
    if data[i:i + 1].isdigit():
        new = bytes([ord('0') + (data[i] - ord('0') + 1) % 10])
    else:
        new = bytes([data[i] ^ 0x01])
    return data[:i] + new + data[i + 1:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--seed', type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    telegrams = [('dsmr-parser V4.2 example', DSMR_V4_2)]
    telegrams += [(f'generated {i}', dsmr_generated(rng)) for i in range(20)]
    for source, text in telegrams:
        case('dsmr', source, text.encode(), lambda text=text: dsmr_expected(text))
        bad = corrupt(text.encode(), rng, protected=1)
        case('dsmr', source + ', one byte changed', bad, lambda bad=bad: dsmr_expected(bad.decode('latin-1')))

    frames = [(f'smllib real meter {i + 1}', a2b_hex(f)) for i, f in enumerate(SML_REAL)]
    frames += [(f'generated {i}', sml_generated(rng, escaped=i % 5 == 0)) for i in range(20)]
    for source, frame in frames:
        case('sml', source, frame, lambda frame=frame: sml_expected(frame))
        bad = corrupt(frame, rng, protected=8)
        case('sml', source + ', one byte changed', bad, lambda bad=bad: sml_expected(bad))


if __name__ == '__main__':
    main()
