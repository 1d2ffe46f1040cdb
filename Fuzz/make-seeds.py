#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (Fuzz/Corpus/<target>/). Run once by hand when a target's input shape changes;
the seeds are committed, CI never runs this.

DNS seeds are real captures: a real BIND 9 (named) serves a zone with a TSIG key, and a UDP relay between it and
BIND's own tools (nsupdate, dig) keeps every datagram both ways: signed UPDATEs and queries as nsupdate and dig
write them, and BIND's answers, signed and unsigned. The other seeds come from the test fixtures (the kubeconfig
corpus), and from the shapes of real answers (a kubelet's Node, a watch stream with a BOOKMARK and a 410 ERROR,
Cloudflare's envelopes as its API schema gives them)."""
import base64, hashlib, json, os, shutil, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzz", "Corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capture_dns():
    """Every datagram between nsupdate/dig and a real named, through a relay."""
    work = tempfile.mkdtemp(prefix="knd-seeds-")
    secret = base64.b64encode(b"kube-node-dns fuzz seed secret!!").decode()
    port = free_port()
    with open(f"{work}/example.test.zone", "w") as f:
        f.write("$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
                "www IN CNAME kubernetes\n")
    with open(f"{work}/named.conf", "w") as f:
        f.write(f'key "kube-node-dns" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
                f'options {{ directory "{work}"; pid-file "{work}/named.pid"; session-keyfile none; '
                f'listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; notify no; }};\n'
                'controls { };\n'
                f'zone "example.test" {{ type primary; file "{work}/example.test.zone"; '
                'update-policy { grant kube-node-dns zonesub ANY; }; };\n')
    named = subprocess.Popen(["/usr/sbin/named", "-g", "-c", f"{work}/named.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay.bind(("127.0.0.1", 0))
    relay_port = relay.getsockname()[1]
    captured = []
    stop = threading.Event()

    def pump():
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.settimeout(2)
        relay.settimeout(0.2)
        while not stop.is_set():
            try:
                data, client = relay.recvfrom(65535)
            except socket.timeout:
                continue
            captured.append(data)
            upstream.sendto(data, ("127.0.0.1", port))
            try:
                answer, _ = upstream.recvfrom(65535)
            except socket.timeout:
                continue
            captured.append(answer)
            relay.sendto(answer, client)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(port), "@127.0.0.1", "example.test", "SOA"],
                              capture_output=True).stdout:
                break
            time.sleep(0.1)
        key = f"hmac-sha256:kube-node-dns:{secret}"
        updates = [
            "update add kubernetes.example.test 60 A 203.0.113.10\nupdate add kubernetes.example.test 60 A 203.0.113.11\n"
            "update add kubernetes.example.test 60 AAAA 2001:db8::10\n"
            'update add _kube-node-dns.kubernetes.example.test 60 TXT "kube-node-dns owner=default" "A 203.0.113.10" "A 203.0.113.11" "AAAA 2001:db8::10"\n',
            "prereq yxrrset kubernetes.example.test A 203.0.113.10\nupdate delete kubernetes.example.test A 203.0.113.10\n",
            "prereq nxdomain taken.example.test\nupdate add taken.example.test 60 CNAME kubernetes.example.test\n",
            "update add b12._kube-node-dns-index.example.test 60 TXT \"kube-node-dns owner=default template={node}.nodes.example.test\" \"node-1 node-2\"\n",
        ]
        for script in updates:
            subprocess.run(["nsupdate", "-y", key], input=f"server 127.0.0.1 {relay_port}\nzone example.test\n{script}send\n",
                           text=True, capture_output=True, timeout=20)
        # One signed with the wrong secret: BIND's BADSIG answer.
        wrong = "hmac-sha256:kube-node-dns:" + base64.b64encode(b"not the secret at all, not at all").decode()
        subprocess.run(["nsupdate", "-y", wrong], input=f"server 127.0.0.1 {relay_port}\nzone example.test\nupdate add x.example.test 60 A 203.0.113.9\nsend\n",
                       text=True, capture_output=True, timeout=20)
        for name, rtype in [("kubernetes.example.test", "A"), ("kubernetes.example.test", "AAAA"), ("www.example.test", "CNAME"),
                            ("www.example.test", "A"), ("_kube-node-dns.kubernetes.example.test", "TXT"), ("example.test", "SOA"),
                            ("example.test", "NS"), ("missing.example.test", "A"), ("b12._kube-node-dns-index.example.test", "TXT")]:
            subprocess.run(["dig", "+time=2", "+tries=1", "+norecurse", "-p", str(relay_port), "@127.0.0.1", name, rtype],
                           capture_output=True, timeout=20)
        subprocess.run(["dig", "+time=2", "+tries=1", "-y", key, "-p", str(relay_port), "@127.0.0.1", "kubernetes.example.test", "A"],
                       capture_output=True, timeout=20)
    finally:
        stop.set()
        thread.join()
        named.terminate()
        named.wait()
        shutil.rmtree(work, ignore_errors=True)
    return captured


def main():
    for target in os.listdir(CORPUS) if os.path.isdir(CORPUS) else []:
        shutil.rmtree(os.path.join(CORPUS, target))
    messages = capture_dns()
    if len(messages) < 20:
        sys.exit(f"only {len(messages)} DNS datagrams captured; is BIND 9 (named, nsupdate, dig) installed?")
    for message in messages:
        put("dns-message", message)
        put("tsig", bytes(5) + message)
    stream = b"".join(len(m).to_bytes(2, "big") + m for m in messages[:6])
    put("dns-tcp-frames", b"\x00" + stream)
    put("dns-tcp-frames", b"\x03\x00\x01\x07" + stream)

    node = {"kind": "Node", "apiVersion": "v1", "metadata": {
        "name": "pool-1-a1b2", "uid": "4213c221-0d8c-4e57-8553-9e8484c81331", "resourceVersion": "6212",
        "creationTimestamp": "2026-11-27T00:40:00Z",
        "labels": {"kubernetes.io/hostname": "pool-1-a1b2", "node-role.kubernetes.io/edge": "", "topology.kubernetes.io/zone": "fsn1"},
        "annotations": {"kube-node-dns.io/hostnames": "edge-1.example.com,edge.example.org", "node.alpha.kubernetes.io/ttl": "0"},
        "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:status": {"f:conditions": {}}}}]},
        "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute",
                                                          "timeAdded": "2026-11-27T00:41:00Z"}], "unschedulable": False},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True",
                                  "reason": "KubeletReady", "lastHeartbeatTime": "2026-11-27T00:42:00Z"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.4"}, {"type": "ExternalIP", "address": "203.0.113.10"},
                                 {"type": "ExternalIP", "address": "2001:db8::10"}, {"type": "Hostname", "address": "pool-1-a1b2"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0"}}}
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "ingress-nginx-x1", "namespace": "ingress", "resourceVersion": "6300",
                                                           "labels": {"app": "ingress-nginx"}},
           "spec": {"nodeName": "pool-1-a1b2", "hostNetwork": True},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "podIP": "203.0.113.10"}}
    lines = [json.dumps({"type": "ADDED", "object": node}), json.dumps({"type": "MODIFIED", "object": pod}),
             json.dumps({"type": "BOOKMARK", "object": {"kind": "Node", "apiVersion": "v1", "metadata": {"resourceVersion": "6400",
                         "annotations": {"k8s.io/initial-events-end": "true"}}}}),
             json.dumps({"type": "DELETED", "object": node}),
             json.dumps({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": "too old resource version: 6212 (6400)", "reason": "Expired", "code": 410}})]
    put("watch-stream", b"\xff\x00" + "\n".join(lines).encode() + b"\n")
    put("watch-stream", b"\xff\x04\x10\x80\x03\xff" + "\r\n".join(lines[:3]).encode() + b"\r\n\n")
    put("watch-stream", b"\x02\x00" + lines[-1].encode() + b"\n")
    page = {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "6400", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},
            "items": [node, dict(node, metadata=dict(node["metadata"], name="pool-1-c3d4"))]}
    put("list-items", b"\xff\x00" + json.dumps(page).encode())
    put("list-items", b"\xff\x03\x07\x40\xff" + json.dumps(page, indent=1).encode())
    put("list-items", b"\x10\x00" + b'{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}')

    record = {"id": "372e67954025e0ba6aaa6d586b9e0b59", "zone_id": "023e105f4ecef8ad9ca31a8372d0c353", "zone_name": "example.com",
              "name": "kubernetes.example.com", "type": "A", "content": "203.0.113.10", "proxied": False, "proxiable": True,
              "ttl": 60, "comment": "kube-node-dns owner=default", "tags": [], "settings": {}, "meta": {},
              "created_on": "2026-11-27T00:40:00.000000Z", "modified_on": "2026-11-27T00:40:00.000000Z"}
    cname = dict(record, id="a1", name="www.example.com", type="CNAME", content="kubernetes.example.com")
    info = {"page": 1, "per_page": 5000, "count": 2, "total_count": 2, "total_pages": 1}
    put("cloudflare-answer", b"\x00\x00" + json.dumps({"success": True, "errors": [], "messages": [], "result": [record, cname], "result_info": info}).encode())
    put("cloudflare-answer", b"\x00\x01" + json.dumps({"success": True, "errors": [], "messages": [], "result": [
        {"id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "example.com", "status": "active", "account": {"id": "01a7362d577a6c3019a474fd6f485823"}}],
        "result_info": dict(info, count=1, total_count=1)}).encode())
    put("cloudflare-answer", b"\x00\x02" + json.dumps({"success": True, "errors": [], "messages": [], "result": {
        "deletes": [record], "patches": [], "posts": [cname]}}).encode())
    put("cloudflare-answer", b"\x06\x00" + json.dumps({"success": False, "errors": [{"code": 10000, "message": "Authentication error"}],
                                                        "messages": [], "result": None}).encode())
    put("cloudflare-answer", b"\x07\x00" + json.dumps({"success": False, "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}]}).encode())
    put("cloudflare-answer", b"\x09\x00<html><head><title>502 Bad Gateway</title></head></html>")

    corpus = os.path.join(ROOT, "Tests", "KubernetesAPITests", "kubeconfigs")
    for name in sorted(os.listdir(corpus)):
        if name.endswith((".yaml", ".json")):
            with open(os.path.join(corpus, name), "rb") as f:
                put("kubeconfig", f.read())
    for text in ["role=edge", "role!=edge,!excluded", "env in (prod, staging),tier notin (db)", "example.com/role==edge, exists",
                 "kubernetes.io/os=linux,node-role.kubernetes.io/edge", ""]:
        put("label-selector", text)
    for text in ["kubernetes.example.com", "www.example.com.", "*.example.com", "edge-1.nodes.example.com", "_kube-node-dns.example.com",
                 "xn--bcher-kva.example"]:
        put("dns-name", text)
    for text in ["203.0.113.10", "2001:db8::10", "2001:DB8:0:0:0:0:0:1", "::ffff:192.0.2.1", "fe80::1%eth0", "::", "10.0.0.4"]:
        put("ip-address", text)
    for text in ["1h30m", "100ms", "2.5", "5m", "1µs", "40s", "0"]:
        put("duration", text)
    for args in [["--dns-name=kubernetes.example.com", "--once"], ["-ttl", "60", "-dry-run"], ["--node-selector", "role=edge", "--once=false"]]:
        put("go-flags", "\0".join(args))
    print("seeds:", ", ".join(f"{t} {len(os.listdir(os.path.join(CORPUS, t)))}" for t in sorted(os.listdir(CORPUS))))


main()
