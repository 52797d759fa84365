#!/usr/bin/env python3
"""Recomputes an OpenVPP epoch report from the report alone, following oracle/SCORING.md
(not the Rust code): the rules hash, every device's score, the split of the emission, the
next reputation, the leaves, their hashes, the Merkle root, the totals and the report hash.

    python3 verify_report.py REPORT.jsonl [--previous-total N]

Prints the report hash (compare it with the one posted on-chain) and exits 0 when every
number in the report is what the rules give; otherwise prints each difference, exits 1.
Standard library only (Python 3.8+).
"""

import argparse
import hashlib
import json
import struct
import sys

BPS = 10_000
LEAF_DOMAIN = b"OVPP-LEAF-V1"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(text):
    n = 0
    for c in text:
        n = n * 58 + B58.index(c)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + raw


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def leaf_hash(program_id, device_key, leaf):
    return sha256(
        b"\x00",
        LEAF_DOMAIN,
        program_id,
        device_key,
        struct.pack(
            "<QHQIIQQ",
            leaf["cumulative_amount"],
            leaf["reputation_bps"],
            leaf["epoch"],
            leaf["epochs_active"],
            leaf["faults"],
            leaf["energy_delivered_wh"],
            leaf["flexibility_delivered_wh"],
        ),
    )


def node_hash(a, b):
    lo, hi = (a, b) if a <= b else (b, a)
    return sha256(b"\x01", lo, hi)


def merkle_root(hashes):
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def share_bps(part, whole):
    return 0 if whole == 0 else min(part * BPS // whole, BPS)


def per_kwh(wh, rate):
    return wh * rate // 1000


def score(inputs, epoch_secs, rules):
    batches = inputs["accepted_batches"] + inputs["rejected_batches"]
    quality = share_bps(inputs["covered_secs"], epoch_secs) * share_bps(inputs["accepted_batches"], batches) // BPS
    s = {
        "generation": per_kwh(inputs["generated_wh"], rules["generation_per_kwh"]),
        "storage": per_kwh(inputs["discharged_wh"], rules["storage_shifted_per_kwh"])
        + per_kwh(inputs["storage_available_wh_hours"], rules["storage_available_per_kwh_hour"]),
        "stability": per_kwh(inputs["stress_flex_wh"], rules["stability_per_kwh"]),
        "demand_response": per_kwh(inputs["demand_response_wh"], rules["demand_response_per_kwh"]),
        "online": inputs["online_secs"] * rules["online_per_hour"] // 3600,
        "quality_bps": quality,
        "points": 0,
    }
    if "price_response_per_kwh" in rules:  # rules v2
        s["price_response"] = per_kwh(inputs["price_response_wh"], rules["price_response_per_kwh"])
    if quality >= rules["min_quality_bps"]:
        total = s["generation"] + s["storage"] + s["stability"] + s["demand_response"] + s.get("price_response", 0) + s["online"]
        s["points"] = total * quality // BPS
    return s


def next_reputation(before, s, inputs, rules):
    standing = s["quality_bps"]
    if inputs["fault_intervals"] > 0:
        standing = max(standing - rules["fault_penalty_bps"], 0)
    return min((7 * before + 3 * standing) // 10, BPS)


def verify(report_bytes, previous_total=None):
    problems = []

    def check(what, got, want):
        if got != want:
            problems.append(f"{what}: report says {got!r}, the rules give {want!r}")

    lines = report_bytes.split(b"\n")
    if lines[-1] != b"":
        problems.append("the report does not end with a newline")
    header = json.loads(lines[0])
    devices = [json.loads(l) for l in lines[1:] if l]
    rules = header["rules"]
    rules_json = json.dumps(rules, separators=(",", ":")).encode()
    version = "OVPP-SCORING-V2" if "price_response_per_kwh" in rules else "OVPP-SCORING-V1"
    check("rules_version", header["rules_version"], version)
    check("rules_hash", header["rules_hash"], sha256(header["rules_version"].encode(), rules_json).hex())
    program_id = b58decode(header["program_id"])
    epoch_secs = header["end_ts"] - header["start_ts"]
    keys = [b58decode(d["device_key"]) for d in devices]
    check("device order (by raw key bytes)", keys, sorted(keys))

    scores = [score(d["inputs"], epoch_secs, rules) for d in devices]
    weights = [s["points"] * d["reputation_before_bps"] if d["status"] == "active" else 0 for s, d in zip(scores, devices)]
    total_weight = sum(weights)
    hashes = []
    minted = 0
    for i, (d, s, w) in enumerate(zip(devices, scores, weights)):
        where = f"line {i + 2} ({d['device_key']})"
        leaf = d["leaf"]
        check(f"{where} leaf epoch", leaf["epoch"], header["epoch"])
        if d["status"] == "active":
            check(f"{where} score", d["score"], s)
            amount = header["emission"] * w // total_weight if total_weight else 0
            check(f"{where} amount", d["amount"], amount)
            check(f"{where} reputation", leaf["reputation_bps"], next_reputation(d["reputation_before_bps"], s, d["inputs"], rules))
        else:
            check(f"{where} amount of a {d['status']} device", d["amount"], 0)
        minted += d["amount"]
        h = leaf_hash(program_id, keys[i], leaf)
        check(f"{where} leaf_hash", d["leaf_hash"], h.hex())
        hashes.append(h)
    check("leaf_count", header["leaf_count"], len(devices))
    if hashes:
        check("root", header["root"], merkle_root(hashes).hex())
    check("cumulative_total", header["cumulative_total"], header["previous_cumulative_total"] + minted)
    if previous_total is not None:
        check("previous_cumulative_total", header["previous_cumulative_total"], previous_total)
    return hashlib.sha256(report_bytes).hexdigest(), problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--previous-total", type=int, help="the previous epoch's posted cumulative total")
    args = parser.parse_args()
    with open(args.report, "rb") as f:
        report_hash, problems = verify(f.read(), args.previous_total)
    for p in problems:
        print(p, file=sys.stderr)
    print(json.dumps({"report_hash": report_hash, "ok": not problems}))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
