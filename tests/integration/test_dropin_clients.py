"""The NusaSMS drop-in as real NusaSMS client code uses it (issue 16).

NusaSMS's own Python sample (requests, HTTP Basic auth), a PHP cURL client (php-cli) and a
Java URLConnection + DocumentBuilder client (javac) each send through the drop-in, store the
18-digit `messageid` as a number, and ask for its delivery report with `cmd=DR`; a key's DR
callback URL gets NusaSMS's GET. Real API, worker and beat processes, the sandbox over HTTP.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
import requests

from producer.core.contract import State
from tests.support.api_server import KEY, KEY_NAME, OTHER_KEY, OTHER_NAME
from tests.support.waiting import wait_for, wait_states

pytestmark = pytest.mark.timeout(120)

DR_ENV = {"KIRIM_DR_POLL_INTERVAL_S": "0.3", "KIRIM_DR_FIRST_POLL_S": "0.1",
          "KIRIM_DR_BACKOFF_MAX_S": "1"}


@pytest.fixture
def kirim_env(kirim_env: dict[str, str]) -> dict[str, str]:
    """The integration env with fast delivery-report polling."""
    return {**kirim_env, **DR_ENV}


@pytest.fixture
def dropin(api_factory, api_env, receiver):  # type: ignore[no-untyped-def]
    """An API whose key `shop` has a NusaSMS-style DR callback URL and the group Example."""
    policies = {"shop": {"dr_callback_url": f"{receiver.base}/nusasms-dr?secret=abc",
                         "groups": ["Example"], "callback_http": True},
                "billing": {"callback_http": True}}
    return api_factory({**api_env, "KIRIM_API_KEY_POLICIES": json.dumps(policies)})


def _send_url(api) -> str:  # type: ignore[no-untyped-def]
    return f"{api.url}/api/v3/sendsms/plain"


def _dr(api, ref_no: str, output: str = "json", user: str = KEY_NAME,  # type: ignore[no-untyped-def]
        password: str = KEY) -> requests.Response:
    return requests.get(f"{api.url}/api/command", timeout=10, params={
        "user": user, "password": password, "cmd": "DR", "ref_no": ref_no, "output": output})


def test_the_providers_python_sample_works_unchanged(dropin, kirim, workers, sandbox):
    """docs: requests.post(url, data=payload, auth=(username, password))."""
    workers.start()
    workers.beat()
    payload = {"GSM": "6281234567890", "SMSText": "Pesanan #1001 dikirim", "output": "json"}
    reply = requests.post(_send_url(dropin), data=payload, auth=(KEY_NAME, KEY), timeout=10)
    result = reply.json()["results"][0]
    assert reply.status_code == 200 and result["status"] == "0", reply.text
    messageid = result["messageid"]
    assert len(messageid) == 18 and messageid.isdigit() and messageid[0] != "0"
    assert str(int(messageid)) == messageid and int(messageid) < 2**63  # a BIGINT holds it
    status = dropin.client.get(f"/v1/messages/{messageid}")
    assert status.status_code == 200, status.text
    kirim_id = status.json()["id"]
    assert kirim_id != messageid and status.json()["nusasms_id"] == messageid
    assert kirim.status(messageid).id == kirim.status(kirim_id).id == kirim_id
    wait_states(kirim, [kirim_id], {State.DELIVERED})
    report = _dr(dropin, messageid).json()
    assert report["ref_no"] == messageid and report["status"] == "D"
    assert report["err_code"] == "0" and report["sent_date"].endswith(".0")
    xml = ET.fromstring(_dr(dropin, messageid, output="xml").content)
    assert xml.findtext("result/ref_no") == messageid and xml.findtext("result/status") == "D"
    wrong = requests.post(_send_url(dropin), data=payload, auth=(KEY_NAME, "nope"), timeout=10)
    assert wrong.json()["results"][0]["status"] == "-5"


def test_dr_of_an_unknown_or_anothers_id_is_refused(dropin, kirim):
    mine = requests.post(_send_url(dropin), timeout=10, data={
        "user": KEY_NAME, "password": KEY, "GSM": "6281234567890", "SMSText": "x",
        "output": "json"}).json()["results"][0]["messageid"]
    assert _dr(dropin, mine).json()["status"] == "P"  # queued: pending
    for ref_no, user, password in ((mine, OTHER_NAME, OTHER_KEY),
                                   ("123456789012345678", KEY_NAME, KEY), ("", KEY_NAME, KEY)):
        refused = _dr(dropin, ref_no, user=user, password=password).json()
        assert refused == {"results": [{"status": "-22", "messageid": "", "destination": ""}]}
    other = httpx.get(f"{dropin.url}/v1/messages/{mine}",
                      headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 404


def test_credits_honours_type_and_output(dropin, kirim):
    keys = kirim.keys
    kirim.redis.hset(keys.credits_for("sms"), mapping={"value": "5000", "expires": "2027-01-31",
                                                       "read_at": "1"})
    kirim.redis.hset(keys.credits_for("wa"), mapping={"value": "120", "expires": "2027-02-28",
                                                      "read_at": "1"})
    url = f"{dropin.url}/api/command"
    base = {"user": KEY_NAME, "password": KEY, "cmd": "CREDITS"}
    assert requests.get(url, params={**base, "type": "wa", "output": "json"}, timeout=10
                        ).json() == {"value": 120, "expiredDate": "2027-02-28"}
    xml = ET.fromstring(requests.get(url, params={**base, "type": "sms"}, timeout=10).content)
    assert (xml.findtext("result/value"), xml.findtext("result/expiredDate")) == (
        "5000", "2027-01-31")
    bad = requests.get(url, params={**base, "type": "fax", "output": "json"}, timeout=10).json()
    assert bad["results"][0]["status"] == "-22"


def test_group_sends_answer_campaign_and_group(dropin, kirim, workers, sandbox):
    workers.start()
    url = f"{dropin.url}/api/v3/sendsms/group"
    reply = requests.post(url, timeout=10, data={
        "user": KEY_NAME, "password": KEY, "SMSText": "Promo", "group": "Example"})
    root = ET.fromstring(reply.content)
    assert root.findtext("result/status") == "0", reply.text
    assert root.findtext("result/campaign_name").startswith("Group-Api-Campaign-")
    assert root.findtext("result/group") == "Example"
    wait_for(lambda: sandbox.counts().get(("6281234567891", "Promo")) == 1, 20,
             "the group's members to get the text")
    unknown = requests.post(url, timeout=10, data={
        "user": KEY_NAME, "password": KEY, "SMSText": "Promo", "group": "Nobody",
        "output": "json"}).json()
    assert unknown == {"results": [{"status": "-55", "campaign_name": "", "group": "Nobody"}]}
    other = requests.post(url, timeout=10, data={
        "user": OTHER_NAME, "password": OTHER_KEY, "SMSText": "Promo", "group": "Example",
        "output": "json"}).json()
    assert other["results"][0]["status"] == "-55"  # not this key's group: as if absent


def test_a_keys_dr_callback_gets_nusasms_get(dropin, kirim, workers, receiver):
    workers.start()
    workers.beat()
    sent = requests.post(_send_url(dropin), timeout=10, data={
        "user": KEY_NAME, "password": KEY, "GSM": "6281234567890", "SMSText": "track me",
        "output": "json"}).json()["results"][0]["messageid"]
    hit = receiver.next(timeout_s=20)
    assert hit["method"] == "GET" and hit["path"] == "/nusasms-dr"
    assert hit["query"] == {"secret": "abc", "ref_no": sent, "status": "D",
                            "sent_date": hit["query"]["sent_date"], "err_code": "0"}
    assert hit["query"]["sent_date"].endswith(".0")
    wait_for(lambda: len(receiver.hits) >= 1, 5, "one GET")
    assert [h["query"]["status"] for h in receiver.hits] == ["D"]  # only the final report


PHP = r"""<?php
// A NusaSMS client as PHP code calls it: cURL POST, XML reply, the id kept as an integer.
[$_, $base, $user, $password, $gsm, $text] = $argv;
$ch = curl_init("$base/api/v3/sendsms/plain");
curl_setopt_array($ch, [CURLOPT_POST => true, CURLOPT_RETURNTRANSFER => true,
    CURLOPT_POSTFIELDS => http_build_query(["user" => $user, "password" => $password,
        "GSM" => $gsm, "SMSText" => $text])]);
$xml = simplexml_load_string(curl_exec($ch));
$id = intval((string) $xml->result->messageid);
if ((string) $xml->result->status !== "0" || strval($id) !== (string) $xml->result->messageid) {
    fwrite(STDERR, "bad reply\n"); exit(1);
}
for ($i = 0; $i < 100; $i++) {
    $ch = curl_init("$base/api/command?" . http_build_query(["user" => $user,
        "password" => $password, "cmd" => "DR", "ref_no" => $id, "output" => "json"]));
    curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
    $dr = json_decode(curl_exec($ch), true);
    if (($dr["status"] ?? "") === "D") { echo json_encode(["id" => $id, "dr" => $dr]); exit(0); }
    usleep(200000);
}
fwrite(STDERR, "no delivery report\n"); exit(1);
"""


def test_a_php_curl_client_sends_and_reads_its_report(dropin, kirim, workers):
    php = shutil.which("php")
    assert php, "php not found: apt-get install -y php-cli php-curl (.ci/run installs them)"
    workers.start()
    workers.beat()
    out = subprocess.run([php, "-r", PHP.removeprefix("<?php"), "--", dropin.url, KEY_NAME,
                          KEY, "6281234567892", "Halo dari PHP"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    answer = json.loads(out.stdout)
    assert answer["dr"]["ref_no"] == str(answer["id"]) and len(str(answer["id"])) == 18


JAVA = """
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Document;

public class NusaClient {
    static Document get(String url) throws Exception {
        return DocumentBuilderFactory.newInstance().newDocumentBuilder()
            .parse(new URL(url).openStream());
    }
    static String text(Document doc, String tag) {
        return doc.getElementsByTagName(tag).item(0).getTextContent();
    }
    public static void main(String[] a) throws Exception {
        String auth = "user=" + URLEncoder.encode(a[1], "UTF-8") + "&password="
            + URLEncoder.encode(a[2], "UTF-8");
        Document sent = get(a[0] + "/api/v3/sendsms/plain?" + auth + "&GSM=" + a[3]
            + "&SMSText=" + URLEncoder.encode(a[4], "UTF-8"));
        long id = Long.parseLong(text(sent, "messageid"));
        for (int i = 0; i < 100; i++) {
            Document dr = get(a[0] + "/api/command?" + auth + "&cmd=DR&ref_no=" + id);
            if (text(dr, "status").equals("D")) {
                System.out.println(id + " " + text(dr, "ref_no"));
                return;
            }
            Thread.sleep(200);
        }
        System.exit(1);
    }
}
"""


def test_a_java_client_parses_the_id_as_a_long(dropin, kirim, workers, tmp_path: Path):
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "javac/java not found: apt-get install -y default-jdk-headless"
    workers.start()
    workers.beat()
    (tmp_path / "NusaClient.java").write_text(JAVA)
    subprocess.run([javac, "-d", str(tmp_path), str(tmp_path / "NusaClient.java")],
                   check=True, timeout=120)
    out = subprocess.run([java, "-cp", str(tmp_path), "NusaClient", dropin.url, KEY_NAME, KEY,
                          "6281234567893", "Halo dari Java"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    long_id, ref_no = out.stdout.split()
    assert long_id == ref_no and len(ref_no) == 18


def test_the_sandbox_takes_basic_auth_too(sandbox):
    """The provider's twin follows the same page (docs/nusasms-api.md §1.1)."""
    payload = {"GSM": "6281234567890", "SMSText": "basic", "output": "json"}
    ok = requests.post(f"{sandbox.url}/api/v3/sendsms/plain", data=payload, auth=("demo", "demo"),
                       timeout=10).json()["results"][0]
    bad = requests.post(f"{sandbox.url}/api/v3/sendsms/plain", data=payload, auth=("demo", "x"),
                        timeout=10).json()["results"][0]
    assert ok["status"] == "0" and len(ok["messageid"]) == 18 and bad["status"] == "-5"


def test_an_alias_in_use_is_refused_and_nothing_is_written(kirim):
    from producer.core.errors import AliasTaken

    taken = "123456789012345678"
    kirim.redis.set(kirim.keys.alias(taken), "someone-else")
    admit = kirim.enqueuer.prepare({"channel": "sms", "to": "6281234567890", "text": "x"},
                                   "shop", alias=taken)
    [outcome] = kirim.enqueuer.commit([admit])
    assert isinstance(outcome, AliasTaken)
    assert not kirim.redis.exists(kirim.keys.message(admit.job.id))
    assert kirim.redis.get(kirim.keys.alias(taken)) == b"someone-else"
    fresh = kirim.enqueuer.prepare({"channel": "sms", "to": "6281234567890", "text": "x"},
                                   "shop", alias="223456789012345678")
    [accepted] = kirim.enqueuer.commit([fresh])
    assert kirim.status("223456789012345678").id == accepted.id == fresh.job.id
    assert kirim.status(accepted.id).get("nusasms_id") == "223456789012345678"
