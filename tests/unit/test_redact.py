"""What is shown back or logged never carries a credential: userinfo, query tokens, secret paths."""

from __future__ import annotations

from hookstream import redact


def test_userinfo_and_query_values_are_masked_and_the_rest_kept() -> None:
    assert redact.url("https://bob:s3cret@partner.example:8443/hooks/orders?token=abc&v=2#x") == (
        "https://partner.example:8443/hooks/orders?token=***&v=***"
    )
    assert redact.url("https://partner.example/hooks") == "https://partner.example/hooks"
    assert redact.url("http://[::1]:8080/x?k=v") == "http://[::1]:8080/x?k=***"
    assert redact.url("http://[bad") == "***"


def test_a_webhook_url_whose_path_is_the_secret_keeps_only_its_host() -> None:
    slack = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
    assert redact.url(slack, keep_path=False) == "https://hooks.slack.com/***"
    error = f"ClientResponseError: 404, message='Not Found', url='{slack}'"
    shown = redact.urls_in(error, keep_path=False)
    assert "XXXXXXXX" not in shown
    assert shown == "ClientResponseError: 404, message='Not Found', url='https://hooks.slack.com/***'"


def test_header_values_are_masked_names_kept() -> None:
    assert redact.header_values({"Authorization": "Bearer partner-key", "X-Tenant": "7"}) == {
        "Authorization": "***",
        "X-Tenant": "***",
    }


async def test_a_failed_attempt_keeps_no_credentials_of_the_url_in_the_delivery_log() -> None:
    from hookstream.http.outbound.sender import Sender

    sender = Sender(allow_targets=frozenset({"loopback"}))
    await sender.start()
    try:
        attempt = await sender.post("http://bob:pa55@127.0.0.1:1/x?token=abc%zz", b"{}", {}, timeout_ms=2_000)
        broken = await sender.post("http://bob:pa55@[::1/x?token=abc", b"{}", {}, timeout_ms=2_000)
    finally:
        await sender.stop()
    for failed in (attempt, broken):
        assert failed.error
        assert "pa55" not in failed.error
        assert "abc" not in failed.error
