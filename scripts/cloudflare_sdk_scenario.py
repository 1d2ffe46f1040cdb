#!/usr/bin/env python3
"""Drives the standalone cloudflare-emulator with Cloudflare's official Python SDK (PyPI `cloudflare`).

usage: cloudflare_sdk_scenario.py BASE_URL TOKEN READONLY_TOKEN EMAIL GLOBAL_KEY

Uses every endpoint kube-node-dns relies on, through a client that Cloudflare wrote rather than us, and
asserts what comes back: token verify, zones by name, records list with filters, `match` and pagination (the
SDK pages until it gets an empty page), get, create, PUT, PATCH, DELETE, batch (order and all-or-nothing),
both auth styles, validation and conflict errors, a 403 for a token without DNS edit rights, and a 429 and
a 500 that the SDK retries through. Last line: 'N passed, M failed'.
"""
import json
import sys
import time
import urllib.request

import cloudflare
from cloudflare import Cloudflare

base, token, readonly_token, email, global_key = sys.argv[1:6]
switch_base = base.split("/client/v4")[0] + "/_emulator"
client = Cloudflare(api_token=token, base_url=base, max_retries=2)
passed = failed = 0


def check(label, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {label}")
    except Exception as error:  # the report names what broke; the scenario goes on
        failed += 1
        print(f"FAIL {label}: {type(error).__name__}: {error}")


def switch(path):
    request = urllib.request.Request(f"{switch_base}/{path}", method="POST", data=b"")
    urllib.request.urlopen(request).read()


def error_code(error):
    """The Cloudflare error code in an SDK exception's body; for a 1004 "DNS Validation Error", the code
    in its error_chain that says which rule was broken, as Cloudflare nests it."""
    body = error.body if isinstance(error.body, dict) else json.loads(error.response.text)
    first = body["errors"][0]
    return first["error_chain"][0]["code"] if first["code"] == 1004 and first.get("error_chain") else first["code"]


def expect_error(kind, code, fn):
    try:
        fn()
    except kind as error:
        assert error_code(error) == code, f"code {error_code(error)} != {code}"
        return
    raise AssertionError(f"expected {kind.__name__} with code {code}")


state = {}


def verify():
    result = client.user.tokens.verify()
    assert result.status == "active", result


def zone_by_name():
    zones = list(client.zones.list(name="example.com"))
    assert [z.name for z in zones] == ["example.com"], zones
    state["zone"] = zones[0].id


def create_many():
    zone = state["zone"]
    ids = []
    for i in range(12):
        record = client.dns.records.create(
            zone_id=zone, name="www.example.com", type="A", content=f"198.51.100.{i + 1}", ttl=120,
            proxied=False, comment="kube-node-dns owner=sdk")
        assert record.name == "www.example.com" and record.content == f"198.51.100.{i + 1}", record
        assert record.ttl == 120 and record.comment == "kube-node-dns owner=sdk", record
        ids.append(record.id)
    state["ids"] = ids


def paginate():
    page = client.dns.records.list(zone_id=state["zone"], name={"exact": "www.example.com"}, type="A", per_page=5)
    assert page.result_info.total_count == 12 and page.result_info.total_pages == 3, page.result_info
    assert len(page.result) == 5
    contents = sorted(r.content for r in page)  # walks pages 2, 3 and the empty page 4
    assert contents == sorted(f"198.51.100.{i + 1}" for i in range(12)), contents
    past = client.dns.records.list(zone_id=state["zone"], per_page=5, page=9)
    assert past.result == [] and past.result_info.count == 0, past


def filters():
    zone = state["zone"]
    one = list(client.dns.records.list(zone_id=zone, content={"exact": "198.51.100.3"}))
    assert [r.content for r in one] == ["198.51.100.3"], one
    none = list(client.dns.records.list(zone_id=zone, name={"exact": "www.example.com"}, type="AAAA"))
    assert none == [], none
    either = list(client.dns.records.list(
        zone_id=zone, content={"exact": "198.51.100.1"}, type="AAAA", match="any", per_page=50))
    assert [r.content for r in either] == ["198.51.100.1"], either  # content OR type
    both = list(client.dns.records.list(zone_id=zone, content={"exact": "198.51.100.1"}, type="AAAA", per_page=50))
    assert both == [], both  # the default, match=all: content AND type
    suffix = list(client.dns.records.list(zone_id=zone, name={"endswith": ".example.com"}, per_page=50))
    assert len(suffix) == 12, len(suffix)


def get_put_patch_delete():
    zone, first, second = state["zone"], state["ids"][0], state["ids"][1]
    record = client.dns.records.get(dns_record_id=first, zone_id=zone)
    assert record.content == "198.51.100.1", record
    put = client.dns.records.update(
        dns_record_id=first, zone_id=zone, name="www.example.com", type="A", content="198.51.100.101", ttl=300)
    assert put.content == "198.51.100.101" and put.ttl == 300, put
    assert put.comment is None, "PUT replaces the whole record, comment included"
    patched = client.dns.records.edit(dns_record_id=second, zone_id=zone, name="www.example.com", type="A", ttl=60)
    assert patched.ttl == 60 and patched.content == "198.51.100.2" and patched.comment == "kube-node-dns owner=sdk"
    deleted = client.dns.records.delete(dns_record_id=second, zone_id=zone)
    assert deleted.id == second, deleted
    expect_error(cloudflare.NotFoundError, 81044, lambda: client.dns.records.get(dns_record_id=second, zone_id=zone))


def batch():
    zone, ids = state["zone"], state["ids"]
    result = client.dns.records.batch(
        zone_id=zone,
        deletes=[{"id": ids[2]}],
        patches=[{"id": ids[3], "name": "www.example.com", "type": "A", "content": "198.51.100.104",
                  "ttl": 120}],
        puts=[{"id": ids[4], "name": "www.example.com", "type": "A", "content": "198.51.100.105", "ttl": 120}],
        posts=[{"name": "www.example.com", "type": "AAAA", "content": "2001:db8::1", "ttl": 120,
                "comment": "kube-node-dns owner=sdk"}])
    assert [r.id for r in result.deletes] == [ids[2]], result.deletes
    assert [r.content for r in result.patches] == ["198.51.100.104"], result.patches
    assert [r.content for r in result.puts] == ["198.51.100.105"], result.puts
    assert [r.content for r in result.posts] == ["2001:db8::1"], result.posts
    # Deletes run before posts: re-adding the address just deleted in the same batch is not a duplicate.
    gone = client.dns.records.get(dns_record_id=ids[5], zone_id=zone).content
    again = client.dns.records.batch(zone_id=zone, deletes=[{"id": ids[5]}],
                                     posts=[{"name": "www.example.com", "type": "A", "content": gone, "ttl": 120}])
    assert again.posts[0].content == gone


def batch_all_or_nothing():
    zone = state["zone"]
    before = sorted(r.id for r in client.dns.records.list(zone_id=zone, per_page=100))
    expect_error(cloudflare.BadRequestError, 9021, lambda: client.dns.records.batch(
        zone_id=zone, deletes=[{"id": state["ids"][6]}],
        posts=[{"name": "www.example.com", "type": "A", "content": "192.0.2.44", "ttl": 45}]))
    after = sorted(r.id for r in client.dns.records.list(zone_id=zone, per_page=100))
    assert before == after, "a failed batch changed records"
    switch("fail-batch?count=1")
    try:
        client.dns.records.batch(zone_id=zone, deletes=[{"id": state["ids"][6]}])
        raise AssertionError("the failing-batch switch did not fail the batch")
    except cloudflare.APIStatusError:
        pass
    assert sorted(r.id for r in client.dns.records.list(zone_id=zone, per_page=100)) == before


def validation_and_conflicts():
    zone = state["zone"]
    # (Malformed contents such as "300.1.1.1" are refused by the schema itself, so they stay out of the
    # recorded traffic; the Swift emulator tests cover the 9005 answer.)
    expect_error(cloudflare.BadRequestError, 9021, lambda: client.dns.records.create(
        zone_id=zone, name="bad.example.com", type="A", content="192.0.2.1", ttl=45))  # 30..59: Enterprise only
    expect_error(cloudflare.BadRequestError, 81058, lambda: client.dns.records.create(
        zone_id=zone, name="www.example.com", type="A", content="198.51.100.101", ttl=120))
    client.dns.records.create(zone_id=zone, name="alias.example.com", type="CNAME", content="www.example.com", ttl=1)
    try:
        client.dns.records.create(zone_id=zone, name="alias.example.com", type="A", content="192.0.2.1", ttl=120)
        raise AssertionError("an A record was accepted beside a CNAME")
    except cloudflare.BadRequestError as error:
        assert error_code(error) in (81053, 81054), error_code(error)


def auth_styles():
    keyed = Cloudflare(api_email=email, api_key=global_key, base_url=base, max_retries=0)
    assert [z.name for z in keyed.zones.list(name="example.com")] == ["example.com"]
    wrong = Cloudflare(api_token="not-a-real-token", base_url=base, max_retries=0)
    try:
        wrong.user.tokens.verify()
        raise AssertionError("a wrong token was accepted")
    except (cloudflare.AuthenticationError, cloudflare.PermissionDeniedError) as error:
        assert error_code(error) in (1000, 9109), error_code(error)
    readonly = Cloudflare(api_token=readonly_token, base_url=base, max_retries=0)
    assert len(list(readonly.dns.records.list(zone_id=state["zone"], per_page=50))) > 0
    expect_error(cloudflare.PermissionDeniedError, 10000, lambda: readonly.dns.records.create(
        zone_id=state["zone"], name="ro.example.com", type="A", content="192.0.2.9", ttl=120))


def retries_429_and_500():
    switch("fail?status=429&count=1&retryAfter=1")
    started = time.monotonic()
    zones = list(client.zones.list(name="example.com"))
    waited = time.monotonic() - started
    assert zones and waited >= 0.9, f"the SDK retried after {waited:.2f}s, not after Retry-After: 1"
    switch("fail?status=500&count=1")
    assert client.dns.records.get(dns_record_id=state["ids"][0], zone_id=state["zone"]).content == "198.51.100.101"
    switch("fail?status=429&count=2&retryAfter=0")
    try:
        Cloudflare(api_token=token, base_url=base, max_retries=1).zones.list(name="example.com")
        raise AssertionError("429 past the retry budget was not surfaced")
    except cloudflare.RateLimitError as error:
        assert error.response.headers.get("retry-after") is not None


for label, step in [
    ("token verify", verify), ("zone by name", zone_by_name), ("create 12 records", create_many),
    ("pagination over 3 pages and an empty page", paginate), ("list filters and match=any", filters),
    ("get, PUT, PATCH, DELETE", get_put_patch_delete), ("batch in order", batch),
    ("batch is all or nothing", batch_all_or_nothing), ("validation and conflict errors", validation_and_conflicts),
    ("token and global-key auth, 9109 and 10000", auth_styles), ("429 with Retry-After and 500 retried", retries_429_and_500),
]:
    check(label, step)
print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
