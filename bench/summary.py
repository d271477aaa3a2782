"""bench/results/SUMMARY.md, rebuilt from the result files and bench/findings.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.machine import caption
from bench.report import RESULTS, load_json

FINDINGS = Path(__file__).resolve().parent / "findings.md"


def _yes(met: bool) -> str:
    return "**met**" if met else "**not met**"


def _runs(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | quick | run | load before → after | seconds |", "|---|---|---|---|---|"]
    for name, data in results.items():
        info = data["info"]
        after = info.get("load_after", [0])[0]
        lines.append(f"| {name} | {data.get('quick')} | {caption(info)} | "
                     f"{info['load_before'][0]:.2f} → {after:.2f} | {info.get('seconds', '')} |")
    return lines


def _throughput(d: dict[str, Any]) -> list[str]:
    in_flight = d.get("in_flight", 64)
    lines = [f"kirim: {d['kirim_procs']} worker processes × {d['kirim_threads']} threads with its "
             f"defaults ({in_flight} calls in flight: each thread's batch of 8 goes at once, up "
             f"to a process's 64-connection pool); ceiling: asyncio httpx, {in_flight} in "
             "flight (one 1-connection client each); naive: Celery defaults "
             "(prefork, 2 children on 2 CPUs). Steady msgs/s (middle 80% of acceptance times). "
             "At 50 and 200 ms a second pair at half as many in flight (kirim's pools halved).",
             "", "| provider latency | ceiling | kirim | naive | kirim / ceiling | kirim / naive "
             "| kirim N | naive N |", "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['latency_ms']} ms | {r['ceiling']['steady_msgs_per_s']:.0f} | "
                     f"{r['kirim']['steady_msgs_per_s']:.0f} | "
                     f"{r['naive']['steady_msgs_per_s']:.0f} | {r['kirim_over_ceiling']:.2f} | "
                     f"{r['kirim_over_naive']:.1f}× | "
                     f"{r['kirim']['n']} | {r['naive']['n']} |")
        if "at_half" in r:
            h = r["at_half"]
            lines.append(f"| {r['latency_ms']} ms, both at {h['in_flight']} in flight | "
                         f"{h['ceiling']['steady_msgs_per_s']:.0f} | "
                         f"{h['kirim']['steady_msgs_per_s']:.0f} | | "
                         f"{h['kirim_over_ceiling']:.2f} | | {h['kirim']['n']} | |")
        if "ceiling_8_connections" in r:
            c8 = r["ceiling_8_connections"]["steady_msgs_per_s"]
            lines.append(f"| {r['latency_ms']} ms, ceiling with 8 connections | {c8:.0f} | | | "
                         f"{r['kirim']['steady_msgs_per_s'] / c8:.2f} | | | |")
    lines += ["", "Cost per message in the same runs (worker CPU: the worker process groups; "
              "Redis commands: INFO commandstats, commands inside Lua scripts included; the "
              "ceiling's is its own process):", "",
              "| provider latency | kirim worker CPU ms | naive worker CPU ms | ceiling CPU ms "
              "| kirim Redis cmds | naive Redis cmds | kirim Redis CPU ms | naive Redis CPU ms |",
              "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        k, n = r["kirim"], r["naive"]
        cells = [k.get("worker_cpu_ms_per_msg"), n.get("worker_cpu_ms_per_msg"),
                 r["ceiling"].get("client_cpu_ms_per_msg"), k.get("redis_calls_per_msg"),
                 n.get("redis_calls_per_msg"), k.get("redis_cpu_ms_per_msg"),
                 n.get("redis_cpu_ms_per_msg")]
        lines.append(f"| {r['latency_ms']} ms | "
                     + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    return lines


def _otp(d: dict[str, Any]) -> list[str]:
    return [f"{d['backlog']:,} SMS queued; general worker (otp,sms,wa × "
            f"{d['general_threads']} threads) and OTP worker (otp × {d['otp_threads']}); "
            f"provider latency {d['provider_latency_ms']} ms; {d['otps']} OTPs at "
            f"{d['otp_per_s']}/s.", "",
            "| p50 | p99 | max | enqueue → reply p99 | OTPs accepted | SMS sent meanwhile | "
            "SMS still queued |", "|---|---|---|---|---|---|---|",
            f"| {d['p50_ms']} ms | {d['p99_ms']} ms | {d['max_ms']} ms | "
            f"{d['p99_enqueue_to_reply_ms']} ms | {d['otps_accepted']}/{d['otps']} | "
            f"{d['sms_sent_meanwhile']:,} | {d['sms_still_queued_at_end']:,} |", "",
            f"The OTP worker's first OTP (its services are built on the first task) is not "
            f"counted: {d.get('cold_first_otp_ms') or 0:.0f} ms."]


def _cost(d: dict[str, Any]) -> list[str]:
    k, n = d["kirim"], d["naive"]
    top = ", ".join(f"{c} {v}" for c, v in list(k["redis_calls_by_cmd"].items())[:12])
    return [f"At {d['latency_ms']} ms provider latency; kirim {k['procs']} × {k['threads']} "
            f"threads, N={k['n']}; naive N={n['n']}.", "",
            "| | worker CPU ms/msg | Redis calls/msg (worker) | Redis calls/msg (producer) | "
            "sandbox CPU ms/msg | Redis CPU ms/msg | RSS idle MiB | RSS warm MiB | "
            "RSS peak under load MiB |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| kirim | {k['worker_cpu_ms_per_msg']} | {k['redis_calls_per_msg']} | "
            f"{k['producer_redis_calls_per_msg']} | {k['sandbox_cpu_ms_per_msg']} | "
            f"{k['redis_cpu_ms_per_msg']} | "
            f"{d['kirim_rest']['idle_rss_mib']} | {d['kirim_rest']['warm_rss_mib']} | "
            f"{k['peak_rss_mib']} |",
            f"| naive | {n['worker_cpu_ms_per_msg']} | {n['redis_calls_per_msg']} | "
            f"{n.get('producer_redis_calls_per_msg', '—')} | {n['sandbox_cpu_ms_per_msg']} | "
            f"{n['redis_cpu_ms_per_msg']} | "
            f"{d['naive_rest']['idle_rss_mib']} | "
            f"{d['naive_rest']['warm_rss_mib']} | {n['peak_rss_mib']} |", "",
            f"kirim worker-side Redis commands per message by command: {top}. Commands run "
            "inside Lua scripts count (INFO commandstats counts them); the client round trips "
            "are fewer: each EVALSHA is one.",
            f"Idle CPU of one kirim worker: {d['kirim_rest']['idle_cpu_pct']}% of a core; "
            f"naive: {d['naive_rest']['idle_cpu_pct']}%."]


def _enqueue(d: dict[str, Any]) -> list[str]:
    lines = ["| path | msgs/s | API CPU ms/msg | Redis calls/msg |", "|---|---|---|---|"]
    for name, r in d["rows"].items():
        lines.append(f"| {name} | {r['msgs_per_s']:,} | {r.get('api_cpu_ms_per_msg', '—')} | "
                     f"{r['redis_calls_per_msg']} |")
    return lines


def _scaling(d: dict[str, Any]) -> list[str]:
    lines = [f"{d['threads']} threads per process, {d['latency_ms']} ms latency, rate limit "
             f"{d['rate_limit_per_s']}/s.", "",
             "| processes | steady msgs/s | latency bound | CPU bound (2 cores / CPU per msg) | "
             "worker CPU ms/msg |", "|---|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['procs']} | {r['steady_msgs_per_s']:.0f} | "
                     f"{r['latency_bound_msgs_per_s']:.0f} | {r.get('cpu_bound_msgs_per_s', 0):.0f}"
                     f" | {r['worker_cpu_ms_per_msg']} |")
    return lines


def _ratelimit(d: dict[str, Any]) -> list[str]:
    return [f"{d['procs']} processes × {d['threads']} threads, limit {d['limit_per_s']}/s burst "
            f"{d['burst']}, {d['requests']} requests, 0 ms latency.", "",
            f"- most requests in any 1 s window: **{d['max_in_any_1s_window']}** "
            f"(limit {d['limit_per_s']}, limit + burst {d['bound']})",
            f"- sustained rate: **{d['sustained_per_s']}/s** "
            f"({100 * d['sustained_fraction']:.1f}% of the limit)"]


def _profile(d: dict[str, Any]) -> list[str]:
    areas = ", ".join(f"{a} {p}%" for a, p in d["areas_pct"].items())
    own = [f"{f} {p}%" for f, p in d["inclusive_top_pct"]
           if f.split(" (")[1].startswith(("worker/", "producer/"))][:10]
    self_top = ", ".join(f"{f} {p}%" for f, p in d["self_top_pct"][:8])
    deepest = [f"| {f} | {p}% |" for f, p in d.get("deepest_kirim_line_pct", [])[:15]]
    return [f"py-spy, {d['seconds']} s on one of {d['procs']} worker processes × "
            f"{d['threads']} threads at 0 ms latency; {d['samples']} active samples; flame "
            "graph in `profile.svg`. Shares are of active samples (a sample can fall in "
            "several areas).", "",
            f"- CPU of the profiled process over the window: consumer (main) thread "
            f"{d['thread_cpu']['main_thread_core_pct']}% of a core, the {d['threads']} pool "
            f"threads together {d['thread_cpu']['other_threads_core_pct']}%",
            f"- by area: {areas}", f"- kirim functions (inclusive): "
            f"{', '.join(own)}", f"- top self time: {self_top}", "",
            "Innermost kirim line of each sample (what kirim code was waiting on or running):",
            "", "| frame | share of samples |", "|---|---|", *deepest]


def _http_clients(d: dict[str, Any]) -> list[str]:
    rows = d["cpu_ms_per_request"]
    return [f"One thread, keep-alive, {d['requests']} form POSTs each to the sandbox at 0 ms: "
            "CPU per request.", "", "| client | CPU ms per request |", "|---|---|",
            f"| httpx | {rows['httpx']} |", f"| WireClient (worker/nusasms/wire.py) | "
            f"{rows['wire']} |", "", f"httpx / WireClient: **{d['httpx_over_wire']}×**"]


def _knobs(d: dict[str, Any]) -> list[str]:
    out = [f"kirim as shipped (prefetch multiplier 1, task events off, batch tasks of 8) and "
           f"one change at a time, side by side; {d['procs']} worker processes × "
           f"{d['threads']} threads, {d['messages']} messages per run.", "",
           "| provider latency | variant | msgs/s | worker CPU ms/msg | Redis cmds/msg | "
           "Redis CPU ms/msg | CPU vs shipped | rate vs shipped |",
           "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        out.append(f"| {r['latency_ms']} ms | {r['variant']} | {r['steady_msgs_per_s']:.0f} | "
                   f"{r['worker_cpu_ms_per_msg']} | {r['redis_calls_per_msg']} | "
                   f"{r['redis_cpu_ms_per_msg']} | {r['cpu_vs_shipped']}× | "
                   f"{r['rate_vs_shipped']}× |")
    return out


SECTIONS = {"throughput": ("1. Throughput", _throughput),
            "otp_latency": ("2. OTP latency under backlog", _otp),
            "cost": ("3. Cost per message", _cost),
            "enqueue": ("4. Enqueue rate", _enqueue),
            "scaling": ("5. Scaling", _scaling),
            "ratelimit": ("6. Rate-limit accuracy", _ratelimit),
            "http_clients": ("7. The provider call's HTTP client", _http_clients),
            "knobs": ("8. Celery's knobs", _knobs),
            "profile": ("Profile of a worker", _profile)}


def _targets(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| target | wanted | got | |", "|---|---|---|---|"]
    rows: list[tuple[str, dict[str, Any]]] = []
    if "throughput" in results:
        rows += list(results["throughput"]["targets"].items())
    if "otp_latency" in results:
        rows.append(("OTP p99 under 20k backlog", results["otp_latency"]["target"]))
    if "enqueue" in results:
        rows += [(f"enqueue {k}", v) for k, v in results["enqueue"]["targets"].items()]
    if "ratelimit" in results:
        t = results["ratelimit"]
        rows.append(("rate limit", {**t["target"], "got": f"max {t['max_in_any_1s_window']}, "
                                    f"sustained {100 * t['sustained_fraction']:.1f}%"}))
    for name, t in rows:
        lines.append(f"| {name} | {t['want']} | {t['got']} | {_yes(t['met'])} |")
    return lines


def write() -> Path:
    """Rebuild SUMMARY.md from whatever result files exist."""
    results = {name: d for name in SECTIONS if (d := load_json(name)) is not None}
    out = ["# kirim benchmarks: summary", "",
           "Generated by `python -m bench`; every figure is a PNG beside its JSON. Ratios are "
           "the claim; absolute numbers are context for this machine and this moment "
           "(see the load averages: other processes shared the 2 cores).", "",
           "## Runs", "", *_runs(results), "", "## Targets", "", *_targets(results), ""]
    for name, (title, render) in SECTIONS.items():
        if name in results:
            out += [f"## {title}", "", *render(results[name]), "",
                    f"![{name}]({name}.png)" if (RESULTS / f"{name}.png").exists() else "", ""]
    if FINDINGS.exists():
        out += [FINDINGS.read_text()]
    path = RESULTS / "SUMMARY.md"
    path.write_text("\n".join(out) + "\n")
    return path
