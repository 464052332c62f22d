"""Webhooks: Standard Webhooks signatures, the address rules (no SSRF), events written by the
lifecycle, and deliveries with retries, against a receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from shared import jobs, webhooks
from shared.db import session_scope
from shared.models import DeliveryStatus, JobKind, WebhookDelivery, utcnow
from tests.support.receiver import Receiver
from tests.support.tls import Authority

# the example published with the Standard Webhooks specification
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# ---------------------------------------------------------------------------------- signing


def test_signature_matches_the_specifications_example():
    key = webhooks.signing_key(SPEC_SECRET)
    assert webhooks.sign(key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_signature_is_what_the_spec_describes_and_the_reference_library_accepts():
    secret = new_secret()
    body = json.dumps({"type": "job.completed", "data": {"id": "x" * 32}}).encode()
    now = int(time.time())
    signature = webhooks.sign(webhooks.signing_key(secret), "msg_1", now, body)
    # by hand: HMAC-SHA256 keyed with the base64-decoded secret over "id.timestamp.body"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, b"msg_1." + str(now).encode() + b"." + body, "sha256").digest()
    assert signature == "v1," + base64.b64encode(expected).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body + b" ", headers)


@pytest.mark.parametrize(
    "secret",
    ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_" + "QUJD"],
)
def test_malformed_secrets_are_refused(secret):
    with pytest.raises(ValueError, match="RRR_WEBHOOK_SECRET"):
        webhooks.signing_key(secret)


# ---------------------------------------------------------------------------------- addresses

REFUSED_BY_DEFAULT = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
]


@pytest.mark.parametrize("address", REFUSED_BY_DEFAULT)
def test_private_addresses_are_refused_by_default(override_settings, address):
    override_settings(RRR_WEBHOOK_ALLOWED_HOSTS="")
    with pytest.raises(webhooks.WebhookRefused, match="private, loopback"):
        webhooks.check_addresses("hooks.example.com", [address])


def test_a_public_host_is_allowed_by_default_unless_one_address_is_private(override_settings):
    override_settings(RRR_WEBHOOK_ALLOWED_HOSTS="")
    webhooks.check_addresses("hooks.example.com", ["93.184.216.34", "2606:2800:220:1::1"])
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_addresses("hooks.example.com", ["93.184.216.34", "10.0.0.1"])


def test_the_allow_list_names_hosts_and_networks(override_settings):
    override_settings(RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1, 10.0.0.0/8, *.example.org, a.test")
    webhooks.check_addresses("127.0.0.1", ["127.0.0.1"])
    webhooks.check_addresses("inside.corp", ["10.9.8.7"])  # a listed network
    webhooks.check_addresses("hooks.example.org", ["93.184.216.34"])
    webhooks.check_addresses("a.test", ["93.184.216.34"])
    with pytest.raises(webhooks.WebhookRefused, match="not in RRR_WEBHOOK_ALLOWED_HOSTS"):
        webhooks.check_addresses("other.example.com", ["93.184.216.34"])
    # a listed name that resolves somewhere private (DNS rebinding) is still refused
    with pytest.raises(webhooks.WebhookRefused, match="private, loopback"):
        webhooks.check_addresses("hooks.example.org", ["169.254.169.254"])
    with pytest.raises(webhooks.WebhookRefused, match="private, loopback"):
        webhooks.check_addresses("a.test", ["127.0.0.2"])


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://user:pw@example.com/", "user name or password"),
        ("http://example.com/hook", "must be https://"),
        ("https://localhost/hook", "private, loopback"),
        ("https://127.0.0.1/hook", "private, loopback"),
        ("https://2130706433/hook", "private, loopback"),  # 127.0.0.1 as one number
        ("https://[::1]:8443/hook", "private, loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "private, loopback"),
        ("https://host.invalid/hook", "does not resolve"),
        ("https://example.com:99999/", "invalid port"),
    ],
)
def test_urls_refused_by_default(override_settings, url, why):
    override_settings(RRR_WEBHOOK_ALLOWED_HOSTS="")
    with pytest.raises(webhooks.WebhookRefused, match=why):
        webhooks.resolve(url)


def test_a_listed_loopback_receiver_resolves_to_the_address_checked(override_settings):
    override_settings(RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1")
    target = webhooks.resolve("http://127.0.0.1:8123/hooks?x=1")
    assert (target.scheme, target.host, target.port) == ("http", "127.0.0.1", 8123)
    assert (target.path, target.address) == ("/hooks?x=1", "127.0.0.1")
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.resolve("http://127.0.0.2:8123/hooks")


# ---------------------------------------------------------------------------------- events


def hooked_job(url: str, events: str = "start,progress,completed") -> str:
    with session_scope() as session:
        return jobs.create_job(
            session, kind=JobKind.BATCH, inputs=[], params={}, webhook=(url, events)
        ).id


def deliveries(job_id: str) -> list[WebhookDelivery]:
    with session_scope() as session:
        query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
        return list(session.scalars(query.order_by(WebhookDelivery.created_at)))


def test_the_lifecycle_writes_the_events_asked_for(migrated, override_settings):
    override_settings(RRR_WEBHOOK_PROGRESS_INTERVAL_S="3600")
    job_id = hooked_job("https://hooks.example.com/x")
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, 300)
    for done in range(1, 4):  # rate-limited: one progress event, not three
        with session_scope() as session:
            assert jobs.set_progress(session, job_id, attempt, done, 4)
    assert [d.event for d in deliveries(job_id)] == ["start", "progress"]
    assert deliveries(job_id)[1].snapshot["progress"] == {"done": 1, "total": 4}
    with session_scope() as session:
        assert jobs.mark_succeeded(session, job_id, attempt, {"items": []})
        assert not jobs.mark_canceled(session, job_id)  # no second completed event
    rows = deliveries(job_id)
    assert [d.event for d in rows] == ["start", "progress", "completed"]
    # the progress report not yet sent is stale once the job has ended
    assert [d.status for d in rows] == ["pending", "superseded", "pending"]


def test_only_the_chosen_events_and_none_without_a_webhook(migrated):
    job_id = hooked_job("https://hooks.example.com/x", "completed")
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, 300)
        jobs.set_progress(session, job_id, attempt, 1, 2)
        jobs.mark_failed(session, job_id, "image_corrupt", "bad", attempt)
    assert [d.event for d in deliveries(job_id)] == ["completed"]
    with session_scope() as session:
        plain = jobs.create_job(session, kind=JobKind.IMAGE, inputs=[], params={}).id
        attempt = jobs.mark_running(session, plain, 300)
        jobs.mark_succeeded(session, plain, attempt, {})
    assert deliveries(plain) == []


# ---------------------------------------------------------------------------------- delivery


def _due_now(job_id: str) -> None:
    with session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id, WebhookDelivery.status == "pending")
            .values(next_attempt_at=utcnow())
        )


def _dispatch_job(job_id: str) -> int:
    """Claim and send the due deliveries (of this job only), as the dispatcher does."""
    from worker.webhooks import claim_due, deliver

    sent = 0
    for delivery_id, attempt in claim_due(100):
        with session_scope() as session:
            mine = session.get(WebhookDelivery, delivery_id).job_id == job_id
        if mine:
            deliver(delivery_id, attempt)
            sent += 1
    return sent


def test_a_delivery_is_signed_retried_with_backoff_and_recorded(migrated, override_settings):
    secret = new_secret()
    override_settings(
        RRR_WEBHOOK_SECRET=secret,
        RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        RRR_WEBHOOK_RETRY_BASE_S="30",
        RRR_WEBHOOK_MAX_ATTEMPTS="3",
    )
    from api.openapi import JobSchema
    from api.schemas import job_json

    with Receiver(statuses=[500]) as receiver:
        job_id = hooked_job(receiver.url, "completed")
        with session_scope() as session:
            attempt = jobs.mark_running(session, job_id, 300)
            jobs.mark_succeeded(session, job_id, attempt, {"items": [], "summary": {}})
        assert _dispatch_job(job_id) == 1
        [row] = deliveries(job_id)
        assert row.status == "pending" and row.attempts == 1
        wait = (row.next_attempt_at - utcnow()).total_seconds()
        assert 25 < wait <= 30  # the first retry waits RRR_WEBHOOK_RETRY_BASE_S
        assert _dispatch_job(job_id) == 0  # not due yet
        _due_now(job_id)
        assert _dispatch_job(job_id) == 1
        [row] = deliveries(job_id)
        assert row.status == DeliveryStatus.DELIVERED.value and row.attempts == 2
        assert [entry.get("status_code") for entry in row.log] == [500, 204]

    (first_headers, first_body), (headers, body) = receiver.received
    assert first_body == body  # a retry resends the same event...
    assert first_headers["webhook-id"] == headers["webhook-id"] == row.id  # ...under its id
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "job.completed"
    assert event["data"]["id"] == job_id and event["data"]["status"] == "succeeded"
    assert headers["content-type"] == "application/json"
    with session_scope() as session:
        job = job_json(jobs.get_job(session, job_id))
    assert JobSchema().validate(job) == {}  # as the OpenAPI document describes it
    shown = job["webhook"]
    assert shown["url"] == receiver.url and shown["events"] == ["completed"]
    assert [(d["event"], d["attempt"], d.get("status_code")) for d in shown["deliveries"]] == [
        ("completed", 1, 500),
        ("completed", 2, 204),
    ]


def test_attempts_are_bounded_and_redirects_not_followed(migrated, override_settings):
    override_settings(
        RRR_WEBHOOK_SECRET=new_secret(),
        RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        RRR_WEBHOOK_MAX_ATTEMPTS="2",
    )
    with Receiver(then=200) as elsewhere, Receiver(then=302) as receiver:
        receiver.redirect_to = elsewhere.url
        job_id = hooked_job(receiver.url, "start")
        with session_scope() as session:
            jobs.mark_running(session, job_id, 300)
        for _ in range(3):
            _due_now(job_id)
            _dispatch_job(job_id)
        [row] = deliveries(job_id)
        assert row.status == DeliveryStatus.FAILED.value and row.attempts == 2
        assert [entry["status_code"] for entry in row.log] == [302, 302]
        assert len(receiver.received) == 2 and elsewhere.received == []


def test_a_listed_name_resolving_to_a_private_address_is_refused_at_delivery(
    migrated, override_settings
):
    # the name is allowed, its addresses are not (as after a DNS answer changed): no request
    override_settings(RRR_WEBHOOK_SECRET=new_secret(), RRR_WEBHOOK_ALLOWED_HOSTS="localhost")
    with Receiver() as receiver:
        job_id = hooked_job(f"http://localhost:{receiver.port}/hooks", "start")
        with session_scope() as session:
            jobs.mark_running(session, job_id, 300)
        _dispatch_job(job_id)
        [row] = deliveries(job_id)
        assert "private, loopback" in row.log[0]["error"] and receiver.received == []


def test_a_delivery_whose_last_attempt_never_reported_is_settled_failed(
    migrated, override_settings
):
    # its sender died mid-attempt and the lease ran out: no attempt is left to make
    override_settings(RRR_WEBHOOK_SECRET=new_secret(), RRR_WEBHOOK_MAX_ATTEMPTS="2")
    from worker.webhooks import claim_due

    job_id = hooked_job("https://hooks.example.com/x", "start")
    with session_scope() as session:
        jobs.mark_running(session, job_id, 300)
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .values(attempts=2, next_attempt_at=utcnow())
        )
    claimed = claim_due(100)
    [row] = deliveries(job_id)
    assert row.id not in {delivery_id for delivery_id, _ in claimed}
    assert row.status == DeliveryStatus.FAILED.value


# ---------------------------------------------------------------------------------- TLS


def _deliver_once(override_settings, tmp_path, *, trusted: bool, cert_for: str) -> tuple:
    """One ``start`` event to an https:// receiver on 127.0.0.1 whose certificate names
    ``cert_for``, signed by a CA the worker trusts (SSL_CERT_FILE) or by one it does not."""
    secret = new_secret()
    ours = Authority(tmp_path, "RRR Test Root")
    theirs = Authority(tmp_path, "Unknown Root")
    signer = ours if trusted else theirs
    override_settings(
        RRR_WEBHOOK_SECRET=secret,
        RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        RRR_WEBHOOK_MAX_ATTEMPTS="1",
    )
    # how a deployment trusts a private CA: OpenSSL's own variable, read at each connection
    override_settings(SSL_CERT_FILE=str(ours.ca_file))
    with Receiver(tls=signer.server_context(cert_for)) as receiver:
        assert receiver.url.startswith("https://127.0.0.1:")
        job_id = hooked_job(receiver.url, "start")
        with session_scope() as session:
            jobs.mark_running(session, job_id, 300)
        assert _dispatch_job(job_id) == 1
    [row] = deliveries(job_id)
    return secret, row, receiver.received


def test_an_https_receiver_with_a_trusted_certificate_gets_the_signed_event(
    migrated, override_settings, tmp_path
):
    secret, row, received = _deliver_once(
        override_settings, tmp_path, trusted=True, cert_for="127.0.0.1"
    )
    assert row.status == DeliveryStatus.DELIVERED.value
    assert [entry.get("status_code") for entry in row.log] == [204]
    [(headers, body)] = received
    assert Webhook(secret).verify(body, headers)["type"] == "job.start"


@pytest.mark.parametrize(
    ("trusted", "cert_for", "why"),
    [
        (False, "127.0.0.1", "certificate verify failed"),
        (True, "hooks.example.org", "doesn't match"),
    ],
    ids=["unknown-authority", "another-host"],
)
def test_an_https_receiver_whose_certificate_does_not_verify_gets_nothing(
    migrated, override_settings, tmp_path, trusted, cert_for, why
):
    _, row, received = _deliver_once(
        override_settings, tmp_path, trusted=trusted, cert_for=cert_for
    )
    assert row.status == DeliveryStatus.FAILED.value
    [entry] = row.log
    assert "status_code" not in entry and "SSLError" in entry["error"]
    assert why in entry["error"]
    assert received == []  # no request was made over the unverified connection
