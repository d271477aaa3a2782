"""The NusaSMS-compatible drop-in, called the way NusaSMS's own docs show (Python and Java)."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from producer.core.contract import State
from tests.support.waiting import wait_states

pytestmark = pytest.mark.timeout(60)


def _form(**extra: str) -> dict[str, str]:
    return {"user": "shop", "password": "s3cret-shop-key", **extra}  # tests/api_server.py


def test_python_requests_post_reaches_the_sandbox(api, kirim, workers, sandbox):
    workers.start()
    reply = requests.post(f"{api.url}/api/v3/sendsms/plain", timeout=10, data=_form(
        SMSText="Pesanan dikirim", GSM="6281234567890", output="json"))
    assert reply.status_code == 200
    result = reply.json()["results"][0]
    assert result["status"] == "0" and result["destination"] == "6281234567890"
    otp = requests.post(f"{api.url}/api/v3/sendsms/plain", timeout=10, data=_form(
        SMSText="Kode OTP 123456", GSM="6281234567891", otp="Y"))
    root = ET.fromstring(otp.content)
    assert root.findtext("result/status") == "0"
    wa = requests.post(f"{api.url}/api/v3/sendwa/plain", timeout=10, data={
        "username": api.key_name, "password": api.key, "text": "Halo WA", "GSM": "6281234567892",
        "output": "json"})
    ids = [kirim.status(nid).id for nid in (  # the drop-in's 18-digit ids map to kirim's
        result["messageid"], root.findtext("result/messageid") or "",
        wa.json()["results"][0]["messageid"])]
    wait_states(kirim, ids, {State.SENT})
    got = {m["gsm"]: m for m in sandbox.messages()}
    assert got["6281234567890"]["text"] == "Pesanan dikirim"
    assert got["6281234567891"]["otp"] is True
    assert got["6281234567892"]["channel"] == "wa"
    assert kirim.status(ids[0]).get("source") == api.key_name


def test_xml_reply_has_the_providers_exact_shape(api):
    reply = requests.get(f"{api.url}/api/v3/sendsms/plain", timeout=10, params=_form(
        SMSText="x", GSM="6281234567890"))
    assert reply.status_code == 200
    mid = ET.fromstring(reply.content).findtext("result/messageid")
    assert reply.text == (
        '<?xml version="1.0" encoding="UTF-8"?><results><result><status>0</status>'
        f"<messageid>{mid}</messageid><destination>6281234567890</destination>"
        "</result></results>")


@pytest.mark.parametrize(("params", "status"), [
    ({"password": "wrong"}, "-5"),
    ({"user": "nobody"}, "-5"),
    ({"GSM": ""}, "-6"),
    ({"GSM": "081"}, "-13"),
    ({"SMSText": ""}, "-12"),
    ({"SMSText": "€" * 2000}, "-22"),
])
def test_refusals_use_the_providers_codes_with_http_200(api, params, status):
    data = {**_form(SMSText="x", GSM="6281234567890", output="json"), **params}
    reply = requests.post(f"{api.url}/api/v3/sendsms/plain", timeout=10, data=data)
    assert reply.status_code == 200
    assert reply.json() == {"results": [{"status": status, "messageid": "",
                                         "destination": data["GSM"]}]}


def test_credits_command_answers_the_flat_shape(api, kirim):
    url = f"{api.url}/api/command"
    params = _form(cmd="CREDITS", type="sms", output="json")
    assert requests.get(url, params=params, timeout=10).json()["results"][0]["status"] == "-26"
    kirim.redis.hset(kirim.keys.credits, mapping={"value": "5000", "expires": "2027-01-31",
                                                  "read_at": "1"})
    assert requests.get(url, params=params, timeout=10).json() == {
        "value": 5000, "expiredDate": "2027-01-31"}
    bad = requests.get(url, params={**params, "password": "no"}, timeout=10).json()
    assert bad["results"][0]["status"] == "-5"


JAVA = """
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;

public class SendSms {
    public static void main(String[] args) throws Exception {
        String data = "user=" + URLEncoder.encode(args[1], "UTF-8")
            + "&password=" + URLEncoder.encode(args[2], "UTF-8")
            + "&GSM=" + URLEncoder.encode(args[3], "UTF-8")
            + "&SMSText=" + URLEncoder.encode(args[4], "UTF-8");
        URLConnection conn = new URL(args[0] + "/api/v3/sendsms/plain").openConnection();
        conn.setDoOutput(true);
        conn.setRequestProperty("Content-Type", "application/x-www-form-urlencoded");
        try (OutputStreamWriter out = new OutputStreamWriter(conn.getOutputStream(),
                StandardCharsets.UTF_8)) {
            out.write(data);
        }
        try (BufferedReader in = new BufferedReader(new InputStreamReader(
                conn.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) System.out.println(line);
        }
    }
}
"""


def test_java_urlconnection_client_reaches_the_sandbox(api, kirim, workers, sandbox,
                                                       tmp_path: Path):
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, ("javac/java not found: apt-get install -y default-jdk-headless"
                            " (.ci/run installs it)")
    workers.start()
    (tmp_path / "SendSms.java").write_text(JAVA)
    subprocess.run([javac, "-d", str(tmp_path), str(tmp_path / "SendSms.java")], check=True,
                   timeout=60)
    out = subprocess.run([java, "-cp", str(tmp_path), "SendSms", api.url, api.key_name, api.key,
                          "6281234567899", "Halo dari Java"], check=True, timeout=30,
                         capture_output=True, text=True).stdout
    root = ET.fromstring(out.strip())
    assert root.findtext("result/status") == "0", out
    wait_states(kirim, [kirim.status(root.findtext("result/messageid") or "").id], {State.SENT})
    assert sandbox.counts()[("6281234567899", "Halo dari Java")] == 1
