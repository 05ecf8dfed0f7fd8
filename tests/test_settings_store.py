import json
import stat

from agent.settings import ServerPin, Settings, SettingsStore
from batm_common.hostaddr import ServerAddress

PIN = ServerPin(ca_pem="-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n",
                spki_sha256="ab" * 32)


def test_defaults_when_nothing_stored(tmp_path):
    assert SettingsStore(tmp_path).load() == Settings()


def test_round_trip_and_private_mode(tmp_path):
    store = SettingsStore(tmp_path)
    settings = Settings(server=ServerAddress("192.0.2.1", 8443), pin=PIN, paired_at=1.5)
    store.save(settings)
    assert SettingsStore(tmp_path).load() == settings
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_corrupt_file_falls_back_to_last_good_and_is_kept_aside(tmp_path, caplog):
    store = SettingsStore(tmp_path)
    store.save(Settings(server=ServerAddress("192.0.2.1", 8443)))
    store.save(Settings(server=ServerAddress("192.0.2.2", 8443), pin=PIN))
    store.path.write_text('{"format": 1, "server": ')  # torn by something outside the agent
    loaded = store.load()
    assert loaded == Settings(server=ServerAddress("192.0.2.2", 8443), pin=PIN)
    assert "not valid JSON" in caplog.text
    assert list(tmp_path.glob("settings.json.corrupt-*"))
    assert SettingsStore(tmp_path).load() == loaded  # the fallback was written back


def test_invalid_values_are_named(tmp_path, caplog):
    store = SettingsStore(tmp_path)
    store.path.write_text(json.dumps({"format": 1, "server": "bad host:99999"}))
    assert store.load() == Settings()
    assert "'server'" in caplog.text


def test_unknown_keys_of_newer_versions_survive_a_save(tmp_path):
    store = SettingsStore(tmp_path)
    store.path.write_text(json.dumps({"format": 1, "server": None, "future": {"x": 1}}))
    settings = store.load()
    store.save(Settings(server=ServerAddress("192.0.2.9"), extra=settings.extra))
    assert json.loads(store.path.read_text())["future"] == {"x": 1}
