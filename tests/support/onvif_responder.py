#!/usr/bin/python3
"""ONVIF test devices for Eyrie's tests (standard library only).

Answers WS-Discovery probes on 239.255.255.250:3702 (joined on --addr) with one ProbeMatches per
device, plus one datagram of garbage. Each device has its own HTTP service on --addr:
  good     (and good2, good3, ...: the same device again)
           GetSystemDateAndTime (open to all, as ONVIF says; its clock is --clock-skew seconds
           off), then GetDeviceInformation, GetCapabilities, GetProfiles, GetStreamUri: each must
           carry a WS-Security UsernameToken whose PasswordDigest matches --user/--password and
           whose Created is within 5 minutes of the device's clock, else a SOAP Fault
           ter:NotAuthorized (HTTP 400), as the ONVIF Core specification says
  garbage  answers 200 with bytes that are not XML
  silent   accepts the connection and never answers
  endless  answers 200 with a body that never ends
  foreign  advertises a service address on another host (must never be contacted)
The good devices also serve ONVIF events as a PullPoint (Events service, WS-BaseNotification):
CreatePullPointSubscription (lifetime at most --lifetime seconds; an Initialized "no motion"
message first), PullMessages (long poll up to its Timeout), Renew, Unsubscribe; a subscription
not renewed in time is gone, and calls to it are a fault. Lines on stdin make events:
  emit <device> <topic> <item> <value> [rule]   a notification to every subscription of <device>
Devices named in --no-stop never send an item whose value is "false" (cameras that lose the
stop). Devices named in --push-only offer no PullPoint (WSPullPointSupport false,
CreatePullPointSubscription a fault) but WS-BaseNotification: Subscribe (ConsumerReference,
InitialTerminationTime), Renew, Unsubscribe; their notifications are POSTed as a Notify to the
consumer address (printing "NOTIFY <device> <subscription> <HTTP status>"). GetSnapshotUri names /snapshot.jpg, which serves --snapshot (without credentials).
Message shapes follow the ONVIF Core and Media service specifications and WS-Discovery 2005/04.
Prints "READY" once listening, then "TOKEN <device> <call>" for every request that carries a
WS-Security UsernameToken (right or wrong), so a test sees which devices were sent credentials,
and "SUBSCRIBE|RENEW|UNSUBSCRIBE|PULLMESSAGES <device> <subscription>" and "SNAPSHOT <device>".
With --port-base the devices listen on consecutive ports from it (so a restarted responder is
found at the same addresses); --no-discovery leaves out WS-Discovery (no multicast socket).
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import http.server
import itertools
import urllib.error
import urllib.request
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET


# One line at a time: the handler threads print concurrently, and print() writes the text and
# its newline separately, so two lines could interleave ("...UnsubscribeTOKEN ...").
_say_lock = threading.Lock()


def say(line):
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
}
ENV_OPEN = ('<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
            + " ".join(f'xmlns:{p}="{u}"' for p, u in [
                ("SOAP-ENV", NS["s"]), ("wsa", NS["a"]), ("d", NS["d"]), ("tds", NS["tds"]),
                ("trt", NS["trt"]), ("tt", NS["tt"]), ("ter", "http://www.onvif.org/ver10/error"),
                ("dn", "http://www.onvif.org/ver10/network/wsdl"), ("tev", NS["tev"]), ("wsnt", NS["wsnt"]),
                ("tns1", "http://www.onvif.org/ver10/topics")]) + ">")

# Event subscriptions of every device: id -> {"device", "until" (device time), "queue"}.
SUBS = {}
SUBS_LOCK = threading.Condition()
SUB_IDS = itertools.count(1)


def seconds_of(text, default):
    m = re.fullmatch(r"PT(\d+)S", (text or "").strip())
    return int(m.group(1)) if m else default


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def notification(topic, item, value, rule, op, when):
    return ('<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
            f'{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{iso(when)}" PropertyOperation="{op}">'
            '<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="vsc0"/>'
            f'<tt:SimpleItem Name="Rule" Value="{rule}"/></tt:Source><tt:Key/>'
            f'<tt:Data><tt:SimpleItem Name="{item}" Value="{value}"/></tt:Data></tt:Message></wsnt:Message>'
            '</wsnt:NotificationMessage>')


def emit(args, device, topic, item, value, rule):
    if value == "false" and device in args.no_stop.split(","):
        return
    msg = notification(topic, item, value, rule, "Changed", device_now(args))
    with SUBS_LOCK:
        for sid, sub in SUBS.items():
            if sub["device"] != device:
                continue
            if sub.get("consumer"):
                threading.Thread(target=push, args=(device, sid, sub["consumer"], [msg]), daemon=True).start()
            else:
                sub["queue"].append(msg)
        SUBS_LOCK.notify_all()


def push(device, sid, consumer, msgs):
    """POSTs a Notify with msgs to a push subscription's consumer, as a camera does."""
    body = envelope("<wsnt:Notify>" + "".join(msgs) + "</wsnt:Notify>").encode()
    req = urllib.request.Request(consumer, data=body, method="POST",
                                 headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        status = f"error:{type(e).__name__}"
    say(f"NOTIFY {device} {sid} {status}")


def read_commands(args):
    for line in sys.stdin:
        words = line.split()
        if len(words) >= 5 and words[0] == "emit":
            emit(args, words[1], words[2], words[3], words[4], words[5] if len(words) > 5 else "Rule1")


def envelope(body, header=""):
    return f"{ENV_OPEN}<SOAP-ENV:Header>{header}</SOAP-ENV:Header><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"


def fault(subcode, reason):
    return envelope(
        f"<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value>"
        f"<SOAP-ENV:Subcode><SOAP-ENV:Value>{subcode}</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code>"
        f'<SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">{reason}</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>')


def profile(token, name, enc, w, h, fps):
    return (f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>'
            f'<tt:VideoEncoderConfiguration token="venc-{token}"><tt:Name>{name}</tt:Name><tt:UseCount>1</tt:UseCount>'
            f"<tt:Encoding>{enc}</tt:Encoding><tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution>"
            f"<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit>"
            f"<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl>"
            f"</tt:VideoEncoderConfiguration></trt:Profiles>")


def device_now(args):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.clock_skew)


def authorized(root, user, password, now):
    tok = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
    if tok is None:
        return False
    name = tok.findtext("wsse:Username", "", NS)
    digest = tok.findtext("wsse:Password", "", NS)
    nonce = tok.findtext("wsse:Nonce", "", NS)
    created = tok.findtext("wsu:Created", "", NS)
    try:
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
        raw_nonce = base64.b64decode(nonce, validate=True)
    except ValueError:
        return False
    if abs((now - when).total_seconds()) > 300:
        return False
    want = base64.b64encode(hashlib.sha1(raw_nonce + created.encode() + password.encode()).digest()).decode()
    return hmac.compare_digest(name, user) and hmac.compare_digest(digest, want)


def make_handler(device, kind, args, port_of):
    push_only = device in args.push_only.split(",")
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, status, text):
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(min(length, 1 << 20))
            if kind == "garbage":
                return self.send(200, "\x00\x01 this is not <xml at all &&&")
            if kind == "silent":
                time.sleep(120)
                return
            if kind == "endless":
                self.send_response(200)
                self.send_header("Content-Type", "application/soap+xml")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"<a>" * 4096
                try:
                    head = ENV_OPEN.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    return
            try:
                root = ET.fromstring(body)
            except ET.ParseError:
                return self.send(400, fault("ter:WellFormed", "not XML"))
            call = root.find("s:Body", NS)
            call = call[0] if call is not None and len(call) else None
            if call is None:
                return self.send(400, fault("ter:WellFormed", "empty Body"))
            name = call.tag.split("}")[-1]
            if root.find("s:Header/wsse:Security/wsse:UsernameToken", NS) is not None:
                say(f"TOKEN {device} {name}")
            if name == "GetSystemDateAndTime":
                t = device_now(args)
                return self.send(200, envelope(
                    "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType>"
                    "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
                    f"<tt:UTCDateTime><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                    f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                    f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date></tt:UTCDateTime>"
                    "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"))
            if not authorized(root, args.user, args.password, device_now(args)):
                return self.send(400, fault("ter:NotAuthorized", "Sender not authorized"))
            service = f"http://{args.addr}:{port_of()}/onvif"
            if name == "GetDeviceInformation":
                out = ("<tds:GetDeviceInformationResponse><tds:Manufacturer>Eyrie Test Optics</tds:Manufacturer>"
                       "<tds:Model>NVT-1 &amp; Co</tds:Model><tds:FirmwareVersion>1.2.3</tds:FirmwareVersion>"
                       "<tds:SerialNumber>SN0001</tds:SerialNumber><tds:HardwareId>HW1</tds:HardwareId>"
                       "</tds:GetDeviceInformationResponse>")
            elif name == "GetCapabilities":
                out = (f"<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>{service}/media_service</tt:XAddr>"
                       "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
                       "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
                       f"<tt:Events><tt:XAddr>{service}/events</tt:XAddr><tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
                       f"<tt:WSPullPointSupport>{'false' if push_only else 'true'}</tt:WSPullPointSupport></tt:Events>"
                       "</tds:Capabilities></tds:GetCapabilitiesResponse>")
            elif name == "GetProfiles" and self.path.endswith("/media_service"):
                out = ("<trt:GetProfilesResponse>" + profile("sub", "Sub stream", "H265", 320, 180, 15)
                       + profile("main", "Main stream", "H264", 640, 360, 15) + "</trt:GetProfilesResponse>")
            elif name == "GetStreamUri" and self.path.endswith("/media_service"):
                token = call.findtext("trt:ProfileToken", "", NS)
                uri = {"main": args.main_uri, "sub": args.sub_uri}.get(token)
                if uri is None:
                    return self.send(400, fault("ter:NoProfile", "no such profile"))
                out = (f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{uri}</tt:Uri>"
                       "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
                       "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>")
            elif name == "GetSnapshotUri" and self.path.endswith("/media_service"):
                out = (f"<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>http://{args.addr}:{port_of()}/snapshot.jpg</tt:Uri>"
                       "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
                       "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse>")
            elif name == "CreatePullPointSubscription" and push_only:
                return self.send(400, fault("ter:ActionNotSupported", "no PullPoint here"))
            elif name == "Subscribe" and push_only and self.path.endswith("/events"):
                now = device_now(args)
                consumer = call.findtext("wsnt:ConsumerReference/{http://www.w3.org/2005/08/addressing}Address", "", NS).strip()
                if not consumer.startswith(("http://", "https://")):
                    return self.send(400, fault("ter:InvalidArgVal", "no ConsumerReference address"))
                life = min(seconds_of(call.findtext("wsnt:InitialTerminationTime", "", NS), 60), args.lifetime)
                sid = next(SUB_IDS)
                with SUBS_LOCK:
                    SUBS[sid] = {"device": device, "until": now + datetime.timedelta(seconds=life), "queue": [],
                                 "consumer": consumer}
                say(f"SUBSCRIBE {device} {sid} {consumer}")
                out = (f"<wsnt:SubscribeResponse><wsnt:SubscriptionReference><wsa5:Address xmlns:wsa5=\"http://www.w3.org/2005/08/addressing\">"
                       f"{service}/subscription/{sid}</wsa5:Address></wsnt:SubscriptionReference>"
                       f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime><wsnt:TerminationTime>{iso(now + datetime.timedelta(seconds=life))}</wsnt:TerminationTime>"
                       "</wsnt:SubscribeResponse>")
            elif name == "CreatePullPointSubscription" and self.path.endswith("/events"):
                now = device_now(args)
                life = min(seconds_of(call.findtext("tev:InitialTerminationTime", "", NS), 60), args.lifetime)
                sid = next(SUB_IDS)
                first = notification("tns1:RuleEngine/CellMotionDetector/Motion", "IsMotion", "false", "Rule1", "Initialized", now)
                with SUBS_LOCK:
                    SUBS[sid] = {"device": device, "until": now + datetime.timedelta(seconds=life), "queue": [first]}
                say(f"SUBSCRIBE {device} {sid}")
                out = (f"<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa5:Address xmlns:wsa5=\"http://www.w3.org/2005/08/addressing\">"
                       f"{service}/subscription/{sid}</wsa5:Address></tev:SubscriptionReference>"
                       f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime><wsnt:TerminationTime>{iso(now + datetime.timedelta(seconds=life))}</wsnt:TerminationTime>"
                       "</tev:CreatePullPointSubscriptionResponse>")
            elif name in ("PullMessages", "Renew", "Unsubscribe") and "/subscription/" in self.path:
                sid = int(self.path.rsplit("/", 1)[-1]) if self.path.rsplit("/", 1)[-1].isdigit() else -1
                with SUBS_LOCK:
                    sub = SUBS.get(sid)
                    if sub is not None and sub["until"] < device_now(args):
                        del SUBS[sid]
                        sub = None
                if sub is None:
                    return self.send(400, fault("ter:InvalidArgVal", "no such subscription (expired or never made)"))
                say(f"{name.upper()} {device} {sid}")
                if name == "Unsubscribe":
                    with SUBS_LOCK:
                        SUBS.pop(sid, None)
                    out = "<wsnt:UnsubscribeResponse/>"
                elif name == "Renew":
                    now = device_now(args)
                    life = min(seconds_of(call.findtext("wsnt:TerminationTime", "", NS), 60), args.lifetime)
                    with SUBS_LOCK:
                        sub["until"] = now + datetime.timedelta(seconds=life)
                    out = (f"<wsnt:RenewResponse><wsnt:TerminationTime>{iso(sub['until'])}</wsnt:TerminationTime>"
                           f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime></wsnt:RenewResponse>")
                else:
                    wait = min(seconds_of(call.findtext("tev:Timeout", "", NS), 10), 60)
                    limit = int(call.findtext("tev:MessageLimit", "10", NS) or 10)
                    deadline = time.monotonic() + wait
                    with SUBS_LOCK:
                        while not sub["queue"] and time.monotonic() < deadline and SUBS.get(sid) is sub:
                            SUBS_LOCK.wait(deadline - time.monotonic())
                        msgs, sub["queue"] = sub["queue"][:limit], sub["queue"][limit:]
                    now = device_now(args)
                    out = (f"<tev:PullMessagesResponse><tev:CurrentTime>{iso(now)}</tev:CurrentTime>"
                           f"<tev:TerminationTime>{iso(sub['until'])}</tev:TerminationTime>{''.join(msgs)}</tev:PullMessagesResponse>")
            else:
                return self.send(400, fault("ter:ActionNotSupported", f"{name} is not supported here"))
            self.send(200, envelope(out))

        def do_GET(self):
            if self.path != "/snapshot.jpg" or not args.snapshot or not kind == "good":
                return self.send(404, "not found")
            say(f"SNAPSHOT {device}")
            with open(args.snapshot, "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", required=True)
    ap.add_argument("--main-uri", required=True)
    ap.add_argument("--sub-uri", required=True)
    ap.add_argument("--devices", default="good", help="comma-separated kinds (see above)")
    ap.add_argument("--clock-skew", type=int, default=0, help="seconds the devices' clock is off")
    ap.add_argument("--port-base", type=int, default=0, help="device i listens on this port + i")
    ap.add_argument("--no-discovery", action="store_true", help="no WS-Discovery socket")
    ap.add_argument("--lifetime", type=int, default=60, help="longest event subscription granted (s)")
    ap.add_argument("--no-stop", default="", help="comma-separated devices that never send a stop")
    ap.add_argument("--push-only", default="", help="comma-separated devices without a PullPoint, pushing instead")
    ap.add_argument("--snapshot", default="", help="JPEG file served as every good device's snapshot")
    args = ap.parse_args()

    matches = []
    for i, kind in enumerate(args.devices.split(",")):
        holder = {}
        behaviour = "good" if kind.startswith("good") else kind
        port = args.port_base + i if args.port_base else 0
        srv = Server((args.addr, port), make_handler(kind, behaviour, args, lambda h=holder: h["port"]))
        holder["port"] = srv.server_address[1]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        host = "192.0.2.1" if kind == "foreign" else args.addr
        xaddr = f"http://{host}:{holder['port']}/onvif/device_service"
        matches.append((f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, kind + str(i))}", kind, xaddr))

    threading.Thread(target=read_commands, args=(args,), daemon=True).start()
    if args.no_discovery:
        say("READY")
        while True:
            time.sleep(3600)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 3702))
    mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(args.addr))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    say("READY")
    while True:
        data, peer = sock.recvfrom(65536)
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            continue
        if root.find("s:Body/d:Probe", NS) is None:
            continue
        msg_id = root.findtext("s:Header/a:MessageID", "", NS)
        sock.sendto(b"\xff\xfe garbage, not a ProbeMatches", peer)
        for endpoint, kind, xaddr in matches:
            header = (f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID><wsa:RelatesTo>{msg_id}</wsa:RelatesTo>"
                      "<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
                      "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>")
            body = (f"<d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>{endpoint}</wsa:Address>"
                    "</wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types>"
                    f"<d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Test%20{kind} "
                    "onvif://www.onvif.org/hardware/NVT-1</d:Scopes>"
                    f"<d:XAddrs>{xaddr}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>")
            sock.sendto(envelope(body, header).encode(), peer)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
