#!/usr/bin/env python3
"""The oracle's VTN driven by ElaadNL's `openadr3-client` (OpenADR 3.0.1), as business logic
and as a VEN, with OAuth2 client credentials; then refusals sent raw. Every answer received is
checked against the OpenADR 3.0.1 OpenAPI definition (spec.py), and every object the client
reads is parsed by its pydantic models. Prints one line per step; exits non-zero on the first
failure.

Environment: VTN_URL (e.g. http://127.0.0.1:8787/openadr3), BL_CLIENT_ID, BL_SECRET,
VEN_CLIENT_ID, VEN_SECRET, REGION (a region with registered devices).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests

import spec

VTN = os.environ["VTN_URL"].rstrip("/")
TOKEN_URL = f"{VTN}/auth/token"
REGION = os.environ["REGION"]
# The oracle listens on loopback HTTP in the test; oauthlib insists on HTTPS otherwise.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

recorder = spec.Recorder(VTN)

from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory  # noqa: E402
from openadr3_client.oadr301._vtn.interfaces.filters import PaginationFilter, TargetFilter  # noqa: E402
from openadr3_client.oadr301.models.event.event import EventPayload, EventUpdate, Interval, IntervalPeriod, NewEvent  # noqa: E402
from openadr3_client.oadr301.models.event.event_payload import EventPayloadDescriptor, EventPayloadType  # noqa: E402
from openadr3_client.oadr301.models.program.program import NewProgram, ProgramUpdate  # noqa: E402
from openadr3_client.oadr301.models.report.report import NewReport, ReportResource  # noqa: E402
from openadr3_client.oadr301.models.report.report_payload import ReportPayload, ReportPayloadType  # noqa: E402
from openadr3_client.oadr301.models.target import Target  # noqa: E402
from openadr3_client.oadr301.models.unit import Unit  # noqa: E402
from openadr3_client.oadr301.models.ven.resource import NewResource  # noqa: E402
from openadr3_client.oadr301.models.ven.ven import NewVen  # noqa: E402
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory  # noqa: E402
from openadr3_client.version import OADRVersion  # noqa: E402


def check(condition: bool, what: str) -> None:  # noqa: FBT001
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


class Webhook(BaseHTTPRequestHandler):
    """A subscriber's callback: each notification (with its Authorization header) into `received`."""

    received: queue.Queue = queue.Queue()

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Webhook.received.put((self.headers.get("Authorization"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    hook = HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{hook.server_address[1]}/notify"

    bl = BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=VTN,
        client_id=os.environ["BL_CLIENT_ID"],
        client_secret=os.environ["BL_SECRET"],
        token_url=TOKEN_URL,
        scopes=None,
        version=OADRVersion.OADR_301,
    )
    ven = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=VTN,
        client_id=os.environ["VEN_CLIENT_ID"],
        client_secret=os.environ["VEN_SECRET"],
        token_url=TOKEN_URL,
        # Asked for explicitly: the token answer must then name exactly these.
        scopes=["read_all", "write_reports", "write_subscriptions", "write_vens"],
        version=OADRVersion.OADR_301,
    )
    target = Target(type="REGION", values=(REGION,))
    in_region = TargetFilter(target_type="REGION", target_values=[REGION])
    start = (datetime.now(tz=UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    period = IntervalPeriod(start=start, duration=timedelta(minutes=15))
    descriptor = EventPayloadDescriptor(payload_type=EventPayloadType.DISPATCH_SETPOINT, units=Unit.KW)

    # Business logic: programs.
    programs = []
    for name in ("interop-peak", "interop-other", "interop-third"):
        programs.append(
            bl.programs.create_program(
                new_program=NewProgram(
                    program_name=name,
                    program_long_name=f"{name} (openadr3-client)",
                    interval_period=period,
                    payload_descriptors=(descriptor,),
                    targets=(target,) if name == "interop-peak" else None,
                )
            )
        )
    program = programs[0]
    check(program.program_name == "interop-peak" and program.id, "BL creates programs")
    check(bl.programs.get_program_by_id(program_id=program.id).id == program.id, "BL reads a program by id")
    by_target = bl.programs.get_programs(target=in_region, pagination=None)
    check([p.id for p in by_target] == [program.id], "programs filter by targetType/targetValues")
    paged = [bl.programs.get_programs(target=None, pagination=PaginationFilter(skip=s, limit=1)) for s in range(4)]
    check([len(p) for p in paged] == [1, 1, 1, 0], "programs page with skip/limit")
    check(len({p[0].id for p in paged[:3]}) == 3, "pages do not repeat a program")
    updated = bl.programs.update_program_by_id(
        program_id=program.id, updated_program=program.update(ProgramUpdate(program_long_name="evening peak relief"))
    )
    check(updated.program_long_name == "evening peak relief", "BL updates a program (PUT)")

    # Business logic subscribes to events of the program, with a token for its webhook. This
    # client version only reads subscriptions, so the subscription is written raw.
    bl_auth = {"Authorization": f"Bearer {token(os.environ['BL_CLIENT_ID'], os.environ['BL_SECRET'])}"}
    operations = [{"objects": ["EVENT"], "operations": ["CREATE", "UPDATE"], "callbackUrl": callback, "bearerToken": "hook-secret"}]
    answer = requests.post(f"{VTN}/subscriptions", headers=bl_auth, timeout=10, json={"clientName": "interop-bl", "programID": program.id, "objectOperations": operations})
    check(answer.status_code == 201, f"BL subscribes to the program's events: {answer.status_code} {answer.text[:300]}")
    subscription = answer.json()
    # openadr3-client 2.4 models subscription operations as 3.0.0's HTTP verbs: the VTN takes
    # those too, and the client parses what it reads back.
    verbs = [{**operations[0], "operations": ["POST"], "callbackUrl": callback + "/verbs"}]
    answer = requests.post(f"{VTN}/subscriptions", headers=bl_auth, timeout=10, json={"clientName": "interop-bl-300", "programID": program.id, "objectOperations": verbs})
    check(answer.status_code == 201, "BL subscribes with 3.0.0's operation names")
    parsed = bl.subscriptions.get_subscription_by_id(subscription_id=answer.json()["id"])
    found = bl.subscriptions.get_subscriptions(pagination=None, target=None, program_id=program.id, client_name="interop-bl-300", objects=None)
    check([s.id for s in found] == [parsed.id], "subscriptions filter by programID and clientName")

    # Business logic: events.
    event = bl.events.create_event(
        new_event=NewEvent(
            programID=program.id,
            event_name="interop evening peak",
            priority=1,
            targets=(target,),
            payload_descriptors=(descriptor,),
            interval_period=period,
            intervals=(Interval(id=0, interval_period=None, payloads=(EventPayload(type=EventPayloadType.DISPATCH_SETPOINT, values=(5.0,)),)),),
        )
    )
    check(event.program_id == program.id and event.intervals[0].payloads[0].values == (5.0,), "BL creates an event")
    check(event.interval_period.duration == timedelta(minutes=15), "the event's interval period round-trips")
    heard = [Webhook.received.get(timeout=10) for _ in range(2)]
    check(all(auth == "Bearer hook-secret" and n["operation"] == "POST" and n["object"]["id"] == event.id for auth, n in heard), "both webhooks hear of the new event")
    for _, note in heard:
        spec.validate_named("notification", note)
    second = bl.events.create_event(
        new_event=NewEvent(
            programID=programs[1].id,
            event_name="interop price curve",
            targets=(target,),
            interval_period=period,
            intervals=(Interval(id=0, interval_period=None, payloads=(EventPayload(type=EventPayloadType.PRICE, values=(0.31,)),)),),
        )
    )
    check(second.id != event.id, "BL creates an event in another program")
    listed = bl.events.get_events(target=None, pagination=PaginationFilter(skip=0, limit=10), program_id=program.id)
    check([e.id for e in listed] == [event.id], "events filter by programID")
    check(len(bl.events.get_events(target=in_region, pagination=None, program_id=None)) == 2, "events filter by target")
    check(len(bl.events.get_events(target=None, pagination=PaginationFilter(skip=1, limit=1), program_id=None)) == 1, "events page")
    check(bl.events.get_event_by_id(event_id=event.id).intervals == event.intervals, "BL reads the event back")
    changed = bl.events.update_event_by_id(event_id=event.id, updated_event=event.update(EventUpdate(priority=2)))
    check(changed.priority == 2, "BL updates the event (PUT)")
    auth, note = Webhook.received.get(timeout=10)
    check(note["operation"] == "PUT" and note["object"]["priority"] == 2, "the webhook hears of the change")

    # A VEN: registers itself and a resource, reads programs and events, reports.
    ven_object = ven.vens.create_ven(new_ven=NewVen(ven_name="interop-ven", targets=(target,)))
    check(ven_object.ven_name == "interop-ven", "VEN registers")
    resource = ven.vens.create_ven_resource(
        ven_id=ven_object.id, new_resource=NewResource(resource_name="battery-1", venID=ven_object.id, targets=(target,))
    )
    check(resource.ven_id == ven_object.id, "VEN registers a resource")
    check([r.id for r in ven.vens.get_ven_resources(ven_id=ven_object.id, resource_name=None, target=None, pagination=None)] == [resource.id], "VEN lists its resources")
    check([v.id for v in ven.vens.get_vens(ven_name="interop-ven", target=None, pagination=None)] == [ven_object.id], "vens filter by venName")
    check(any(p.id == program.id for p in ven.programs.get_programs(target=in_region, pagination=None)), "VEN reads programs")
    check(any(e.id == event.id for e in ven.events.get_events(target=in_region, pagination=None, program_id=program.id)), "VEN reads events")
    report = ven.reports.create_report(
        new_report=NewReport(
            programID=program.id,
            eventID=event.id,
            client_name="interop-ven",
            report_name="delivery",
            resources=(
                ReportResource(
                    resource_name="battery-1",
                    interval_period=period,
                    intervals=(
                        Interval(
                            id=0,
                            interval_period=None,
                            payloads=(ReportPayload(type=ReportPayloadType.READING, values=(4.8,)), ReportPayload(type=ReportPayloadType.BASELINE, values=(6.0,))),
                        ),
                    ),
                ),
            ),
        )
    )
    check(report.event_id == event.id and report.resources[0].resource_name == "battery-1", "VEN posts a report")
    seen = bl.reports.get_reports(pagination=None, program_id=program.id, event_id=event.id, client_name=None)
    check([r.id for r in seen] == [report.id], "BL reads the VEN's report")
    check(ven.reports.get_report_by_id(report_id=report.id).id == report.id, "VEN reads its report back")

    # Refusals as the client raises them (what a VEN may not do is in `refusals`: this client
    # offers a VEN no such calls).
    for what, call in [
        ("an unknown event is 404", lambda: bl.events.get_event_by_id(event_id="evt-unknown")),
        ("a program with events is kept (409)", lambda: bl.programs.delete_program_by_id(program_id=program.id)),
    ]:
        try:
            call()
        except requests.HTTPError as e:
            check(e.response.status_code == (409 if "409" in what else 404), f"{what}: {e.response.status_code}")
        else:
            raise AssertionError(f"{what}: accepted")

    # Another VEN sees none of this VEN's objects, and no measurement (business logic only).
    other = {"Authorization": f"Bearer {token(os.environ['OTHER_VEN_ID'], os.environ['OTHER_VEN_SECRET'])}"}
    for path in [f"/reports/{report.id}", f"/vens/{ven_object.id}", f"/vens/{ven_object.id}/resources/{resource.id}", f"/reports/mv-{event.id}"]:
        answer = requests.get(f"{VTN}{path}", headers=other, timeout=10)
        check(answer.status_code == 404, f"another VEN gets 404 for {path}")
    for path in ["/reports", "/vens", "/subscriptions"]:
        check(requests.get(f"{VTN}{path}", headers=other, timeout=10).json() == [], f"another VEN lists no {path[1:]} of others")
    answer = requests.put(f"{VTN}/vens/{ven_object.id}", headers=other, json={"venName": "stolen"}, timeout=10)
    check(answer.status_code == 404, "another VEN cannot rename this VEN")
    answer = requests.post(f"{VTN}/vens", headers=other, json={"venName": "interop-ven"}, timeout=10)
    check(answer.status_code == 201, "venName is unique per client: another VEN's name is not taken from it")

    # Deletes answer the deleted object.
    check(ven.reports.delete_report_by_id(report_id=report.id).id == report.id, "VEN deletes its report")
    check(ven.vens.delete_ven_resource_by_id(ven_id=ven_object.id, resource_id=resource.id).id == resource.id, "VEN deletes a resource")
    check(ven.vens.delete_ven_by_id(ven_id=ven_object.id).id == ven_object.id, "VEN deletes itself")
    gone = requests.delete(f"{VTN}/subscriptions/{subscription['id']}", headers=bl_auth, timeout=10)
    check(gone.status_code == 200 and gone.json()["id"] == subscription["id"], "BL unsubscribes")
    check(bl.events.delete_event_by_id(event_id=second.id).id == second.id, "BL deletes (cancels) an event")
    check(requests.get(f"{VTN}/events/{second.id}", headers={"Authorization": f"Bearer {token(os.environ['VEN_CLIENT_ID'], os.environ['VEN_SECRET'])}"}, timeout=10).status_code == 404, "a deleted event is gone for VENs")
    check(all(e.id != second.id for e in ven.events.get_events(target=None, pagination=None, program_id=None)), "and from their lists")
    check(bl.programs.delete_program_by_id(program_id=programs[2].id).id == programs[2].id, "BL deletes a program without events")

    refusals()
    counts = recorder.check_all()
    check(sum(counts.values()) >= 60, f"{sum(counts.values())} answers match the OpenADR 3.0.1 definition: " + json.dumps(counts, sort_keys=True))


def token(client_id: str, secret: str) -> str:
    """An access token, the client's credentials in the form body (RFC 6749 §2.3.1)."""
    answer = requests.post(TOKEN_URL, data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}, timeout=10).json()
    check(answer["token_type"] == "Bearer" and answer["expires_in"] > 0, f"a token for {client_id} from form-body credentials")
    return answer["access_token"]


def refusals() -> None:
    """Requests a careless or hostile client sends, raw: each refused with the spec's problem (or RFC 6749's error)."""
    ven_auth = {"Authorization": f"Bearer {token(os.environ['VEN_CLIENT_ID'], os.environ['VEN_SECRET'])}"}
    cases = [
        ("POST", "/auth/token", {"data": {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "0123456789abcdef"}}, 401),
        ("POST", "/auth/token", {"data": {"grant_type": "password"}}, 400),
        ("POST", "/auth/token", {"data": {"grant_type": "client_credentials", "client_id": os.environ["VEN_CLIENT_ID"], "client_secret": os.environ["VEN_SECRET"], "scope": "write_events"}}, 400),
        ("GET", "/programs", {}, 401),
        ("GET", "/events", {"headers": {"Authorization": "Bearer forged.token"}}, 401),
        ("POST", "/events", {"headers": ven_auth, "json": {"programID": "interop-peak", "intervals": []}}, 403),
        ("GET", "/events", {"headers": ven_auth, "params": {"limit": 51}}, 400),
        ("GET", "/events", {"headers": ven_auth, "params": {"skip": -1}}, 400),
        ("GET", "/events", {"headers": ven_auth, "params": {"targetType": "REGION"}}, 400),
        ("GET", "/reports", {"headers": ven_auth, "params": {"venName": "x"}}, 400),
        ("GET", "/events/evt-0000", {"headers": ven_auth}, 404),
        ("GET", "/vens/ven-0000/resources", {"headers": ven_auth}, 404),
        ("POST", "/vens", {"headers": ven_auth, "json": {"venName": ""}}, 400),
        ("POST", "/vens", {"headers": ven_auth, "data": "venName=x"}, 415),
        ("POST", "/reports", {"headers": ven_auth, "json": {"programID": "interop-peak", "eventID": "evt-0000", "clientName": "x", "resources": []}}, 404),
        ("POST", "/subscriptions", {"headers": ven_auth, "json": {"clientName": "x", "programID": "interop-peak", "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "file:///etc/passwd"}]}}, 400),
        ("DELETE", "/programs", {"headers": ven_auth}, 405),
    ]
    for method, path, kwargs, status in cases:
        answer = requests.request(method, f"{VTN}{path}", timeout=10, **kwargs)
        check(answer.status_code == status, f"{method} {path} {kwargs.get('params', '')} -> {answer.status_code}")
    registered = requests.post(f"{VTN}/vens", headers=ven_auth, json={"venName": "twice"}, timeout=10)
    again = requests.post(f"{VTN}/vens", headers=ven_auth, json={"venName": "twice"}, timeout=10)
    check((registered.status_code, again.status_code) == (201, 409), "a venName is registered once (409 after)")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        print(f"FAILED: {type(e).__name__}: {e}".replace("\n", " | "), flush=True)
        sys.exit(1)
    print("ALL PASSED", flush=True)
