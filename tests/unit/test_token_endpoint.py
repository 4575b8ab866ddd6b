"""Token endpoint safety: what a deposit and a refresh may target (protocol §10.3, issue 7)."""

from __future__ import annotations

import pytest

from executor.errors import InvalidTokenEndpoint
from executor.mcp.token_endpoint import check_token_endpoint, token_endpoint_problem

OK = None
ALWAYS_REFUSED = [
    # not an absolute http(s) URL
    "",
    "token",
    "/oauth/token",
    "ftp://auth.example.com/token",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "https://",
    "https:///token",
    "https://auth.example.com:99999/token",
    "https://auth.example.com:port/token",
    "https://[::1/token",
    # a host the sending client (urllib3) reads differently: it ends a host at a backslash and
    # decodes percent-escapes, so these reach the metadata service or loopback
    "https://169.254.169.254\\.evil.example/latest/meta-data",
    "https://127.0.0.1\\.evil.example/admin",
    "https://%31%36%39.254.169.254/token",
    "https://169.254.169.254%2e/token",
    "https://auth%2eexample.com/token",
    # not spelled plainly: non-ASCII (use the punycode form), spaces
    "https://bücher.example/token",
    "https://a b.example/token",
    # credentials in the URL
    "https://user:pass@auth.example.com/token",
    "https://user@auth.example.com/token",
    # unspecified
    "https://0.0.0.0/token",
    "https://0/token",
    "https://0.1.2.3/token",
    "https://[::]/token",
    "https://[::ffff:0.0.0.0]/token",
    # link-local (cloud metadata)
    "https://169.254.169.254/latest/meta-data",
    "https://169.254.0.1/token",
    "https://[fe80::1]/token",
    "https://[fe80::1%25eth0]/token",
    "https://[febf::1]/token",
    "https://[::ffff:169.254.169.254]/token",
    "https://[::ffff:a9fe:a9fe]/token",
    "https://[::169.254.169.254]/token",
    "https://[::ffff:0:169.254.169.254]/token",
    "https://2852039166/token",  # 169.254.169.254 as one number
    "https://0xa9fea9fe/token",
    "https://0251.0376.0251.0376/token",
    "https://169.254.43518/token",
    # multicast, broadcast
    "https://224.0.0.1/token",
    "https://[ff02::1]/token",
    "https://255.255.255.255/token",
]
PRODUCTION_ONLY_REFUSED = [
    "http://auth.example.com/token",
    "http://8.8.8.8/token",
    "https://127.0.0.1/token",
    "https://127.8.9.10:8443/token",
    "https://127.1/token",
    "https://2130706433/token",
    "https://0x7f.0.0.1/token",
    "https://0177.0.0.1/token",
    "https://[::1]/token",
    "https://[::ffff:127.0.0.1]/token",
    "https://[::ffff:7f00:1]/token",
    "https://[0:0:0:0:0:ffff:7f00:1]/token",
    "https://localhost/token",
    "https://LOCALHOST/token",
    "https://localhost./token",
    "https://auth.localhost/token",
    "https://a.b.localhost:8443/token",
    # private and shared ranges (refused outside development, as issue 7 asks)
    "https://10.0.0.1/token",
    "https://10.255.255.255/token",
    "https://172.16.0.1/token",
    "https://172.31.255.255/token",
    "https://192.168.1.10/token",
    "https://100.64.0.1/token",
    "https://[fc00::1]/token",
    "https://[fd12:3456::1]/token",
    "https://[fec0::1]/token",
    "https://[::ffff:10.0.0.1]/token",
    "https://[::ffff:192.168.1.1]/token",
    "https://167772161/token",  # 10.0.0.1
    "https://240.0.0.1/token",  # reserved
]
ALLOWED_EVERYWHERE = [
    "https://auth.example.com/oauth/token",
    "https://auth.example.com:8443/oauth/token?tenant=1",
    "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "https://8.8.8.8/token",
    "https://172.15.255.255/token",  # just outside 172.16/12
    "https://172.32.0.1/token",
    "https://192.169.0.1/token",
    "https://100.128.0.1/token",
    "https://[2001:4860:4860::8888]/token",
    "https://[::ffff:8.8.8.8]/token",
    "https://localhost.example.com/token",  # a name, not *.localhost
    "https://mylocalhost/token",
    "https://10.example.com/token",
]


@pytest.mark.parametrize("environment", ["production", "development", "test"])
@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_refused_in_every_environment(url: str, environment: str) -> None:
    assert token_endpoint_problem(url, environment=environment) is not None


@pytest.mark.parametrize("url", PRODUCTION_ONLY_REFUSED)
def test_refused_in_production(url: str) -> None:
    assert token_endpoint_problem(url, environment="production") is not None


@pytest.mark.parametrize("environment", ["development", "test"])
@pytest.mark.parametrize("url", PRODUCTION_ONLY_REFUSED)
def test_allowed_in_development_and_test(url: str, environment: str) -> None:
    assert token_endpoint_problem(url, environment=environment) is OK


@pytest.mark.parametrize("environment", ["production", "development", "test"])
@pytest.mark.parametrize("url", ALLOWED_EVERYWHERE)
def test_allowed_everywhere(url: str, environment: str) -> None:
    assert token_endpoint_problem(url, environment=environment) is OK


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://auth.example.com/token", "must use https"),
        ("https://127.0.0.1/token", "must not target a loopback address"),
        ("https://10.0.0.1/token", "must not target a private address"),
        ("https://169.254.169.254/", "must not target an unspecified, link-local"),
        ("ftp://x/token", "must be an absolute http or https URL"),
    ],
)
def test_the_reason_says_what_is_wrong(url: str, reason: str) -> None:
    problem = token_endpoint_problem(url, environment="production")
    assert problem is not None and problem.startswith(reason)


def test_check_raises_the_catalogue_error() -> None:
    with pytest.raises(InvalidTokenEndpoint) as raised:
        check_token_endpoint("https://127.0.0.1/token", environment="production")
    assert raised.value.user_message == (
        "This tool is misconfigured (invalid token endpoint). Contact your administrator."
    )
    check_token_endpoint("https://auth.example.com/token", environment="production")
