"""A smart meter's interface on TCP, as ser2net or a networked IR reader serves it, for the
gateway tests: every second, to each connected client, a DSMR P1 telegram or an SML frame
(built as meter_telegrams.py builds them, checked by dsmr-parser or smllib before it goes
out) with the registers grown at the given power. Prints one JSON line per telegram sent:
{"t", "import_wh", "export_wh"}.

    python meter_feed.py --protocol sml --port 9123 --import-w 2000 --export-w 0 [--since T]
"""

import argparse
import asyncio
import json
import time

import meter_telegrams as mt
from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser


def dsmr_telegram(import_wh, export_wh, power_w):
    p_in, p_out = max(power_w, 0), max(-power_w, 0)
    body = (
        '/XMX5LGBBFG1012463390\r\n\r\n1-3:0.2.8(50)\r\n'
        f'1-0:1.8.1({import_wh // 1000:06d}.{import_wh % 1000:03d}*kWh)\r\n1-0:1.8.2(000000.000*kWh)\r\n'
        f'1-0:2.8.1({export_wh // 1000:06d}.{export_wh % 1000:03d}*kWh)\r\n1-0:2.8.2(000000.000*kWh)\r\n'
        f'1-0:1.7.0({p_in // 1000:02d}.{p_in % 1000:03d}*kW)\r\n1-0:2.7.0({p_out // 1000:02d}.{p_out % 1000:03d}*kW)\r\n!'
    )
    text = body + f'{TelegramParser.crc16(body):04X}\r\n'
    TelegramParser(telegram_specifications.V5).parse(text, throw_ex=True)
    return text.encode()


def sml_frame(import_wh, export_wh, power_w):
    entries = [
        (bytes([1, 0, 1, 8, 0, 255]), 30, 0, mt.uint(import_wh, 8)),
        (bytes([1, 0, 2, 8, 0, 255]), 30, 0, mt.uint(export_wh, 8)),
        (bytes([1, 0, 16, 7, 0, 255]), 27, 0, mt.sint(power_w, 4)),
    ]
    frame = mt.sml_frame(entries)
    mt.sml_expected(frame)
    return frame


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--protocol', choices=['dsmr', 'sml'], required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--import-w', type=int, default=2000)
    parser.add_argument('--export-w', type=int, default=0)
    parser.add_argument('--since', type=float, help='when the registers started (unix s): a restarted feed goes on from the same registers')
    args = parser.parse_args()
    start = args.since or time.time()
    clients = set()

    async def serve(reader, writer):
        clients.add(writer)
        try:
            await reader.read()
        finally:
            clients.discard(writer)

    server = await asyncio.start_server(serve, '127.0.0.1', args.port)
    async with server:
        while True:
            await asyncio.sleep(1 - (time.time() % 1))
            t = time.time()
            import_wh = 1_000_000 + int(args.import_w * (t - start) / 3600)
            export_wh = 500_000 + int(args.export_w * (t - start) / 3600)
            power = args.import_w - args.export_w
            data = (dsmr_telegram if args.protocol == 'dsmr' else sml_frame)(import_wh, export_wh, power)
            for writer in list(clients):
                writer.write(data)
            print(json.dumps({'t': t, 'import_wh': import_wh, 'export_wh': export_wh}), flush=True)


if __name__ == '__main__':
    asyncio.run(main())
