"""Signatures, retry decisions and the SSRF guard, as values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from cloud.webhooks import policy, signing, ssrf

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def test_signature_matches_the_standard_webhooks_example() -> None:
    # The example of the Standard Webhooks specification (and its reference libraries).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_rotation_signs_with_every_live_secret_and_either_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = b'{"type":"alert.opened"}'
    headers = signing.headers([new, old], "msg_1", 1_700_000_000, body)
    assert len(headers["webhook-signature"].split()) == 2
    signing.verify(old, headers, body, now=1_700_000_010)
    signing.verify(new, headers, body, now=1_700_000_010)
    with pytest.raises(signing.SignatureError):
        signing.verify(signing.new_secret(), headers, body, now=1_700_000_010)
    with pytest.raises(signing.SignatureError):
        signing.verify(new, headers, body + b" ", now=1_700_000_010)
    with pytest.raises(signing.SignatureError, match="tolerance"):
        signing.verify(new, headers, body, now=1_700_000_000 + 3600)


def _judge(outcome: policy.Outcome, attempts: int = 1, failing_since: datetime | None = None
           ) -> policy.Verdict:
    return policy.judge(outcome, attempts=attempts, failing_since=failing_since, now=NOW,
                        rng=random.Random(1))


def test_2xx_delivers_410_disables_redirect_is_a_failure() -> None:
    assert _judge(policy.Outcome(204)).kind == "delivered"
    assert _judge(policy.Outcome(410)).kind == "disable"
    assert _judge(policy.Outcome(302)).kind == "retry"


def test_retry_after_is_honoured_in_seconds_and_as_a_date() -> None:
    v = _judge(policy.Outcome(429, retry_after="120"))
    assert v.next_attempt_at == NOW + timedelta(seconds=120)
    v = _judge(policy.Outcome(503, retry_after="Thu, 26 Nov 2026 03:10:00 GMT"))
    assert v.next_attempt_at == NOW + timedelta(minutes=10)


def test_backoff_grows_with_jitter_to_an_hour_and_a_day_of_failure_disables() -> None:
    rng = random.Random(7)
    delays = [policy.backoff(n, rng) for n in range(1, 20)]
    assert delays[0] < timedelta(seconds=6)
    assert all(timedelta(minutes=30) <= d <= timedelta(hours=1) for d in delays[12:])
    assert len({d for d in delays[12:]}) > 1  # jittered, not lock-step
    # Retries keep going for the whole day (about 30 attempts), then the endpoint is disabled.
    t, attempts, first = NOW, 0, NOW
    while True:
        attempts += 1
        v = policy.judge(policy.Outcome(500), attempts=attempts, failing_since=first, now=t,
                         rng=rng)
        if v.kind == "disable":
            break
        assert v.next_attempt_at is not None
        t = v.next_attempt_at
    assert t - first >= timedelta(hours=24)
    assert 20 < attempts < 60


def test_ssrf_refuses_private_targets_unless_allowed() -> None:
    assert ssrf.refusal("hooks.bank.example", ["93.184.216.34"], []) is None
    assert "non-public" in (ssrf.refusal("internal", ["10.0.0.5"], []) or "")
    assert "non-public" in (ssrf.refusal("localhost", ["127.0.0.1", "::1"], ["127.0.0.1"]) or "")
    assert ssrf.refusal("localhost", ["127.0.0.1", "::1"], ["127.0.0.0/8", "::1"]) is None
    assert ssrf.refusal("metadata", ["169.254.169.254"], []) is not None
    assert ssrf.refusal("receiver.test", ["192.168.1.9"], ["receiver.test"]) is None
    with pytest.raises(ssrf.BlockedTarget):
        ssrf.parse_url("file:///etc/passwd")


@pytest.mark.parametrize("address", [
    "64:ff9b::7f00:1",              # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",           # NAT64 of the cloud metadata service
    "64:ff9b:1:7f00:0:100::",       # local-use NAT64 (/48 layout) of 127.0.0.1
    "64:ff9b:1::a00:1",             # local-use NAT64 (/96 layout) of 10.0.0.1
    "2002:7f00:1::1",               # 6to4 of 127.0.0.1
    "2002:c0a8:101::",              # 6to4 of 192.168.1.1
    "::ffff:127.0.0.1",             # IPv4-mapped
    "::ffff:10.1.2.3",
    "::127.0.0.1",                  # IPv4-compatible
    "::a9fe:a9fe",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
])
def test_ssrf_judges_ipv6_forms_by_the_ipv4_they_carry(address: str) -> None:
    assert "non-public" in (ssrf.refusal("evil.example", [address], []) or "")


def test_ssrf_lets_embedded_public_ipv4_through_and_honours_the_allow_list() -> None:
    assert ssrf.refusal("nat64.example", ["64:ff9b::808:808"], []) is None
    assert ssrf.refusal("v6.example", ["2606:4700::1111"], []) is None
    assert ssrf.refusal("lab", ["::ffff:10.1.2.3"], ["10.0.0.0/8"]) is None


def test_a_pinned_target_keeps_the_name_for_host_and_tls() -> None:
    target = ssrf.pinned("https://hooks.bank.example:8443/in?x=1", "2606:4700::1111")
    assert target.url == "https://[2606:4700::1111]:8443/in?x=1"
    assert (target.host_header, target.server_name) == ("hooks.bank.example:8443",
                                                        "hooks.bank.example")
    with pytest.raises(ssrf.BlockedTarget):
        ssrf.parse_url("http://user:pw@hooks.bank.example/")
