"""The VPN's pure parts: the gate's answer validated, the UAPI `set` message, the wg-quick file,
the terminal's key file, and the server's tunnel address allocation (on a real SQLite file)."""

import base64
import io
import stat

import pytest
from wireguard_tools import WireguardConfig, WireguardKey

from agent.vpn import keys
from agent.vpn.config import VpnConfig, VpnConfigError, VpnOffer, wg_quick_text
from batm_common.wireguard import PeerSpec, WgError, check_ifname, uapi_set_lines

SERVER_KEY = str(WireguardKey.generate().public_key())
GOOD = {"server_public_key": SERVER_KEY, "endpoint": "192.0.2.1:51820",
        "tunnel_address": "198.51.100.7/24", "server_tunnel_address": "198.51.100.1",
        "allowed_ips": ["198.51.100.1/32"], "mtu": 1400}


def test_a_good_answer_parses():
    config = VpnConfig.from_answer(GOOD)
    assert str(config.tunnel_address) == "198.51.100.7/24" and config.mtu == 1400
    assert config.endpoint.port == 51820 and config.allowed_ips == ("198.51.100.1/32",)
    offer = VpnOffer.from_checkin({"status": "paired", "scenario": "A", "vpn": GOOD})
    assert offer.required and offer.config == config
    missing = VpnOffer.from_checkin({"scenario": "A", "vpn": None, "vpn_reason": "not_configured",
                                     "vpn_message": "generate it"})
    assert missing.required and missing.config is None and missing.message == "generate it"
    assert not VpnOffer.from_checkin({"status": "paired"}).required  # a server without VPN


@pytest.mark.parametrize(("change", "field"), [
    ({"server_public_key": "nope"}, "server_public_key"),
    ({"server_public_key": base64.b64encode(b"x" * 31).decode()}, "server_public_key"),
    ({"endpoint": "192.0.2.1"}, "endpoint"),
    ({"endpoint": "bad host!:1"}, "endpoint"),
    ({"tunnel_address": "198.51.100.1/24"}, "tunnel_address"),
    ({"allowed_ips": ["0.0.0.0/0"]}, "allowed_ips[0]"),
    ({"allowed_ips": []}, "allowed_ips"),
    ({"mtu": 70000}, "mtu"),
    ({"mtu": True}, "mtu"),
])
def test_bad_answers_are_refused_naming_the_field(change, field):
    with pytest.raises(VpnConfigError, match=field.split("[")[0]):
        VpnConfig.from_answer({**GOOD, **change})


def test_uapi_set_message_uses_hex_keys_and_never_replaces_peers_unless_asked():
    private = WireguardKey.generate()
    peer = PeerSpec(SERVER_KEY, ("198.51.100.1/32",), ("192.0.2.1", 51820), 25)
    text = uapi_set_lines(str(private), 51820, (peer,), remove=(SERVER_KEY,))
    lines = text.splitlines()
    assert text.endswith("\n\n") and lines[0] == "set=1"
    assert f"private_key={private.hex}" in lines and "replace_peers=true" not in lines
    assert f"public_key={WireguardKey(SERVER_KEY).hex}" in lines and "remove=true" in lines
    assert "endpoint=192.0.2.1:51820" in lines and "persistent_keepalive_interval=25" in lines
    assert "allowed_ip=198.51.100.1/32" in lines
    assert "replace_peers=true" in uapi_set_lines(replace_peers=True)
    with pytest.raises(ValueError):  # a host name must be resolved by the caller
        uapi_set_lines(peers=(PeerSpec(SERVER_KEY, (), ("server.example", 1)),))


def test_interface_names_fit_the_kernel():
    assert check_ifname("wgab12cdt10") == "wgab12cdt10"
    for bad in ("", "x" * 16, "wg 0", "wg/0"):
        with pytest.raises(WgError):
            check_ifname(bad)


def test_wg_quick_file_is_what_wg_tools_read_back():
    key = WireguardKey.generate()
    config = VpnConfig.from_answer(GOOD)
    text = wg_quick_text(config, key, "192.0.2.1", 1400, "wg-batm")
    parsed = WireguardConfig.from_wgconfig(io.StringIO(text))
    assert parsed.private_key == key and parsed.mtu == 1400
    (peer,) = parsed.peers.values()
    assert str(peer.public_key) == SERVER_KEY and peer.persistent_keepalive == 25
    assert f"{peer.endpoint_host}:{peer.endpoint_port}" == "192.0.2.1:51820"


def test_terminal_key_is_made_once_0600_and_forgotten_on_unpair(tmp_path):
    key = keys.load_or_create(tmp_path)
    path = tmp_path / keys.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load_or_create(tmp_path) == key
    path.write_text("garbage\n")
    assert keys.load_or_create(tmp_path) != key  # unusable: a new one, said in the log
    keys.forget(tmp_path)
    assert not path.exists()


def test_server_allocates_stable_addresses_and_refuses_bad_input(tmp_path, database_url):
    from server.db.engine import open_database
    from server.errors import ServiceError
    from server.pairing.registry import Registry
    from server.pairing.transactions import Transactions
    from server.vpn.service import VpnService, parse_public_key

    sessions = open_database(tmp_path, database_url)
    registry = Registry(Transactions(sessions))
    for serial, scenario in (("A-1", "A"), ("A-2", "A"), ("B-1", "B")):
        registry.create_terminal(serial, scenario, None)
    vpn = VpnService(sessions)
    assert vpn.generate("A-1")["tunnel_address"] == "198.51.100.2/24"
    assert vpn.generate("A-2")["tunnel_address"] == "198.51.100.3/24"
    assert VpnService(sessions).generate("A-1")["tunnel_address"] == "198.51.100.2/24"
    with pytest.raises(ServiceError, match="scenario B"):
        vpn.generate("B-1")
    with pytest.raises(ServiceError, match="no terminal"):
        vpn.generate("A-9")
    registry.delete_terminal("A-1")
    registry.create_terminal("A-4", "A", None)
    assert vpn.generate("A-4")["tunnel_address"] == "198.51.100.2/24"  # freed, reused
    for bad in ("x", base64.b64encode(bytes(32)).decode(), 5):
        with pytest.raises(ServiceError, match="vpn_public_key"):
            parse_public_key(bad)
    # Scenario B terminals get nothing; an A terminal without configuration is told why.
    assert vpn.checkin("B-1", None, "192.0.2.1") == {"scenario": "B"}
    answer = vpn.checkin("A-2", str(WireguardKey.generate().public_key()), "192.0.2.1")
    assert answer["scenario"] == "A" and answer["vpn"] is None
    assert answer["vpn_reason"] == "endpoint_disabled"
