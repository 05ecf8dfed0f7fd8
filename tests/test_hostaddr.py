import pytest

from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("192.0.2.1", "192.0.2.1", 8443),
        ("192.0.2.1:443", "192.0.2.1", 443),
        ("gate.example.com", "gate.example.com", 8443),
        ("Gate.Example.COM.:9000", "gate.example.com", 9000),
        ("localhost:1", "localhost", 1),
        ("a-b.c1:65535", "a-b.c1", 65535),
        ("2001:db8::1", "2001:db8::1", 8443),
        ("[2001:db8::1]:8443", "2001:db8::1", 8443),
        ("[2001:DB8:0::1]", "2001:db8::1", 8443),
        ("  192.0.2.5  ", "192.0.2.5", 8443),
        ("x" * 63 + ".com", "x" * 63 + ".com", 8443),
    ],
)
def test_accepted(text, host, port):
    assert parse_server_address(text) == ServerAddress(host, port)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("192.0.2.1:0", "outside 1-65535"),
        ("192.0.2.1:65536", "outside 1-65535"),
        ("192.0.2.1:http", "not a number"),
        ("192.0.2.1:", "port is empty"),
        ("256.1.1.1", "not a valid IPv4"),
        ("192.0.2", "not a valid IPv4"),
        ("1.2.3.4.5", "not a valid IPv4"),
        ("-bad.example", "letters, digits and inner hyphens"),
        ("bad-.example", "letters, digits and inner hyphens"),
        ("under_score.example", "letters, digits and inner hyphens"),
        ("a..b", "empty label"),
        ("x" * 64 + ".com", "longer than 63"),
        (".".join(["abcdefghij"] * 25), "longer than 253"),
        ("host name", "spaces"),
        ("gäte.example", "non-ASCII"),
        ("[2001:db8::1", "closing"),
        ("[2001:db8::1]x", "unexpected"),
        ("[nothex::zz]:1", "not a valid IPv6"),
        ("2001:db8:::1", "not a valid IPv6"),
        ("[]:80", "host is empty"),
        (":8443", "host is empty"),
        ("http://gate.example", "not a number"),
    ],
)
def test_refused_with_reason(text, reason):
    with pytest.raises(AddressError, match=reason):
        parse_server_address(text)


def test_str_round_trips():
    for text in ["192.0.2.1:8443", "[2001:db8::1]:8443", "gate.example:1"]:
        assert str(parse_server_address(text)) == text
