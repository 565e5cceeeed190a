"""A bad config stops the agent at start with the file, the key and the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import public_key_b64
from edge.__main__ import main as edge_main
from edge.config import ConfigError, load_config

GOOD = """
site = "site-1"
gateway = "gw-1"
key_file = "gw.key"

[broker]
url = "mqtt://127.0.0.1:1883"

[[rfid.readers]]
kind = "impinj_iot"
id = "dock-1"
url = "http://127.0.0.1:9/api/v1/data/stream"

[[rfid.lots]]
id = "LOT-A"
epcs = ["3034257BF7194E4000003039"]
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    assert edge_main(["keygen", "--out", str(tmp_path / "gw.key")]) == 0
    cloud_key = public_key_b64(Ed25519PrivateKey.generate())
    (tmp_path / "cloud.pub").write_text(cloud_key + "\n")
    return tmp_path


def test_good_config_loads_with_paths_relative_to_the_file(config_dir: Path) -> None:
    path = config_dir / "edge.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.key_file == (config_dir / "gw.key").resolve()
    assert config.cloud_public_key_file == (config_dir / "cloud.pub").resolve()
    assert config.rfid.lots[0].id == "LOT-A"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('url = "mqtt://127.0.0.1:1883"', 'url = "http://x"'), "broker.url", "mqtt://"),
        (('gateway = "gw-1"', 'gateway = "gw/1"'), "gateway", "letters, digits"),
        (('kind = "impinj_iot"', 'kind = "impinj_iot"\ncolour = "red"'),
         "rfid.readers.0.impinj_iot.colour", "Extra inputs"),
        (('key_file = "gw.key"', 'key_file = "missing.key"'), "key_file", "does not exist"),
        (('site = "site-1"\n', ""), "site", "Field required"),
        (('[broker]', '[brokr]'), "brokr", "Extra inputs"),
        (('url = "mqtt://127.0.0.1:1883"',
          'url = "mqtt://127.0.0.1:1883"\nfailover_urls = ["mqtt://n2:1883", "nats://n3:4222"]'),
         "broker.failover_urls", "mqtt://"),
        (('key_file = "gw.key"', 'key_file = "gw.key"\ncloud_public_key_file = "none.pub"'),
         "cloud_public_key_file", "No such file"),
        (('key_file = "gw.key"', 'key_file = "gw.key"\ncloud_public_key_file = "gw.key"'),
         "cloud_public_key_file", "not base64"),
        (('[[rfid.lots]]', '[[cameras.cameras]]\nname = "gate-1"\nsource = "0"\ncountry = "xx"\n'
          '[[rfid.lots]]'), "cameras.cameras.0.country", "no plate formats for 'xx'"),
    ],
)
def test_bad_config_names_file_key_and_reason(
    config_dir: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    path = config_dir / "edge.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.file == path
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_a_cluster_gives_the_broker_urls_to_try_in_turn(config_dir: Path) -> None:
    path = config_dir / "edge.toml"
    path.write_text(GOOD.replace(
        'url = "mqtt://127.0.0.1:1883"',
        'url = "mqtt://n1:1883"\n'
        'failover_urls = ["mqtt://n1:1883", "mqtt://n2:1883", "mqtts://n3:8883"]'))
    broker = load_config(path).broker
    assert broker.urls == ("mqtt://n1:1883", "mqtt://n2:1883", "mqtts://n3:8883")
    third = broker.at(broker.urls[2])
    assert (third.host, third.port, third.tls) == ("n3", 8883, True)
    assert third.in_flight == broker.in_flight  # the rest of the settings go along


def test_unparseable_file_says_so(config_dir: Path) -> None:
    path = config_dir / "edge.yaml"
    path.write_text("site: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_agent_exits_2_with_the_reason_on_stderr(config_dir: Path) -> None:
    path = config_dir / "edge.toml"
    path.write_text(GOOD.replace('gateway = "gw-1"', "gateway = 5"))
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert f"{path}: gateway:" in done.stderr


def test_keygen_writes_a_private_key_only_the_owner_can_read(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    out = tmp_path / "k.key"
    assert edge_main(["keygen", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    public = capsys.readouterr().out.strip()
    assert out.with_suffix(".pub").read_text().strip() == public
    assert edge_main(["keygen", "--out", str(out)]) == 2  # never overwrites silently
