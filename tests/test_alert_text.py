"""Alert explanations, alert type names and receipt statuses come from one catalogue, in
English and Chinese, and the browser renders a message exactly as the server does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from decisions.alert_text import (
    ALERT_TYPE_NAMES,
    LANGUAGES,
    MESSAGES,
    RECEIPT_STATUS_NAMES,
    alert_text,
    catalogue,
    placeholders,
    render,
    text_of,
)
from decisions.alert_types import AlertType
from decisions.rules import default_rules

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")


def _sample(message_id: str) -> dict[str, str | int]:
    names = set().union(*(placeholders(t) for t in MESSAGES[message_id].values()))
    return {name: (3 if name == "count" else f"<{name}>") for name in sorted(names)}


def test_every_message_has_english_and_chinese_with_plain_placeholders() -> None:
    for message_id, templates in MESSAGES.items():
        assert set(templates) == set(LANGUAGES), message_id
        assert CJK.search(templates["zh"]), f"{message_id}: zh is not Chinese"
        for template in templates.values():
            # {name} only: no format specs or conversions the browser could not apply
            fields = re.findall(r"\{([^}]*)\}", template)
            assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", f) for f in fields), (message_id, fields)
            params = _sample(message_id)
            rendered = render(message_id, params, "en" if template is templates["en"] else "zh")
            assert "{" not in rendered


def test_every_alert_type_and_receipt_status_is_named_in_both_languages() -> None:
    assert set(ALERT_TYPE_NAMES) == set(AlertType)
    schema = (ROOT / "cloud" / "migrations" / "0100_receipts.sql").read_text()
    check = re.search(r"CHECK \(status IN \(([^)]*)\)\)", schema)
    assert check is not None
    assert set(RECEIPT_STATUS_NAMES) == set(re.findall(r"'([a-z_]+)'", check.group(1)))
    for names in (*ALERT_TYPE_NAMES.values(), *RECEIPT_STATUS_NAMES.values()):
        assert set(names) == set(LANGUAGES) and CJK.search(names["zh"])


def test_a_producer_names_a_message_the_catalogue_knows_with_all_its_parameters() -> None:
    with pytest.raises(KeyError, match="no message"):
        alert_text("tag_missing.rais", lot="L", count=1)
    with pytest.raises(KeyError, match="needs"):
        alert_text("tag_missing.raise", lot="L")
    text = alert_text("tag_missing.raise", lot="LOT-7", count=3)
    assert text.english().startswith("3 tag(s) of pledged lot LOT-7 not read")
    assert text_of(text.evidence()) == text
    assert text_of({"message": {"id": "nonexistent", "params": {}}}) is None
    assert text_of({}) is None


def test_the_edge_alerts_carry_their_message_and_render_in_chinese() -> None:
    from edge.alerting import EdgeAlerting

    alerting = EdgeAlerting(None)

    class Seen:
        def __init__(self, lot: str, epc: str, state: str) -> None:
            self.lot, self.epc, self.state, self.last_seen_us, self.at_us = lot, epc, state, 1, 2

    [raised] = alerting.on_presence([Seen("LOT-7", "E1", "missing"),  # type: ignore[list-item]
                                     Seen("LOT-7", "E2", "missing")])
    text = text_of(raised.evidence)
    assert text is not None and raised.explanation == text.english()
    assert render(text.message_id, text.params, "zh").startswith(
        "质押货批 LOT-7 有 2 个标签在无放货覆盖时离开（另有 0 个属已批准放货），佐证：")


def test_default_rules_name_their_message_and_its_english_is_the_rules_own() -> None:
    for rule in default_rules().rules:
        assert rule.message is not None, rule.name
        assert MESSAGES[rule.message]["en"] == rule.explanation, rule.name


def test_the_browser_fills_templates_as_the_server_does(tmp_path: Path) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("node is required (it comes with npm: ops/install-test-deps.sh)")
    samples = {m: _sample(m) for m in MESSAGES}
    script = tmp_path / "render.js"
    script.write_text(
        "const vm = require('vm');\n"
        "const ctx = { localStorage: { getItem: () => null, setItem: () => {} },\n"
        "  navigator: { language: 'en' }, document: {} };\n"
        "vm.createContext(ctx);\n"
        f"vm.runInContext('const PW_MESSAGES = ' + {json.dumps(json.dumps(catalogue()))}"
        " + ';', ctx);\n"
        f"vm.runInContext(require('fs').readFileSync({json.dumps(str(ROOT / 'cloud/web/i18n.js'))},"
        " 'utf8'), ctx);\n"
        f"const samples = {json.dumps(samples)};\n"
        "const out = {};\n"
        "for (const lang of ['en', 'zh']) {\n"
        "  vm.runInContext(`lang = '${lang}'`, ctx);\n"
        "  out[lang] = {};\n"
        "  for (const [id, params] of Object.entries(samples)) {\n"
        "    ctx.__a = { explanation: 'stored', evidence: { message: { id, params } } };\n"
        "    out[lang][id] = vm.runInContext('alertExplanation(__a)', ctx);\n"
        "  }\n"
        "  ctx.__a = { explanation: 'stored', evidence: { message: { id: 'tag_missing.raise',"
        " params: {} } } };\n"
        "  out[lang].__incomplete = vm.runInContext('alertExplanation(__a)', ctx);\n"
        "  out[lang].__type = vm.runInContext(\"alertTypeLabel('theft.tag_missing')\", ctx);\n"
        "  out[lang].__status = vm.runInContext(\"receiptStatusLabel('pledged')\", ctx);\n"
        "}\n"
        "console.log(JSON.stringify(out));\n")
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for lang in LANGUAGES:
        for message_id, params in samples.items():
            assert out[lang][message_id] == render(message_id, params, lang)
        assert out[lang]["__incomplete"] == "stored"  # falls back to the stored English
    assert out["zh"]["__type"] == "标签缺失" and out["en"]["__type"] == "Tags missing"
    assert out["zh"]["__status"] == "已质押"
