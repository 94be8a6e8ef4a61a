#!/usr/bin/env python3
"""Renders bench/run-all.sh's results: tables (markdown) with every target's
verdict, and charts of throughput against concurrency.

    report.py RESULTS_DIR CHART_DIR [BENCHMARKS.md]

Writes RESULTS_DIR/tables.md and RESULTS_DIR/summary.json, CHART_DIR/*.svg
(when matplotlib is importable), and replaces the part of BENCHMARKS.md between
`<!-- results:begin -->` and `<!-- results:end -->` with the tables."""

import json
import re
import sys
from pathlib import Path

RESULTS = Path(sys.argv[1])
CHARTS = Path(sys.argv[2])
BENCHMARKS = Path(sys.argv[3]) if len(sys.argv) > 3 else None
MIB = 1024.0
ARGON2_MIB = 19.0


def load(name, default=None):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else default


def load_lines(name):
    path = RESULTS / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def to_ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def raw_run(name, rps_pattern):
    """The raw output of run `name` and its requests per second (`rps_pattern`'s
    group 1), or None when the run is missing or did not finish."""
    path = RESULTS / "raw" / f"{name}.txt"
    if not path.exists():
        return None
    text = path.read_text()
    rps = re.search(rps_pattern, text)
    if not rps:
        return None
    return text, {"rps": float(rps.group(1))}


def wrk(name):
    run = raw_run(name, r"Requests/sec:\s+([\d.]+)")
    if run is None:
        return None
    text, out = run
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        out[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    out["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    return out


def h2load(name):
    run = raw_run(name, r"finished in [\d.]+\w+, ([\d.]+) req/s")
    if run is None:
        return None
    text, out = run
    req = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    if req:
        out["succeeded"], out["failed"] = int(req.group(2)), int(req.group(3)) + int(req.group(4))
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if lat:
        out["mean_ms"] = to_ms(lat.group(3))
    return out


def fmt(value, digits=0):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def ms(us):
    return f"{us / 1000:.2f}"


def verdict(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**missed**"


machine = load("machine.json", {})
scenarios = load_lines("scenarios.jsonl")
lines = []
summary = {"targets": []}


def target(name, ok, evidence):
    summary["targets"].append({"target": name, "met": ok, "evidence": evidence})
    lines.append(f"| {name} | {verdict(ok)} | {evidence} |")


# Machine.
runtime = load("runtime.json", {})
lines += [
    "### Machine and run",
    "",
    f"- {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), {machine.get('memory_gib', '?')} GiB, "
    f"Linux {machine.get('kernel', '?')}; load average at start {' '.join(machine.get('loadavg_at_start', []))}",
    f"- commit `{machine.get('commit', '?')}`, {machine.get('rustc', '?')}, {machine.get('profile', 'release')} profile; "
    f"{machine.get('wrk', '')}; {machine.get('h2load', '')}",
    f"- {machine.get('duration_s', '?')} s measured after {machine.get('warmup_s', '?')} s of warm-up per run; "
    f"the whole run took {runtime.get('seconds', '?')} s",
    f"- service environment: `{json.dumps(machine.get('env', {}))}`",
    "",
]

# Targets.
wrk_books, wrk_flask, wrk_echo = wrk("wrk-gateway-books"), wrk("wrk-flask-books"), wrk("wrk-echo-http")
h2_books, h2_echo = h2load("h2load-books-list"), h2load("h2load-echo-grpc")
h2_books_off = h2load("h2load-books-list-token-cache-off")
bound = load("hash-bound.json")
def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def rounds(prefix, reader):
    """The median of a comparison's rounds (raw/rounds/PREFIX-N.txt, or
    store-floor-N.json), with each round's figure; None without rounds."""
    directory = RESULTS / "raw" / "rounds"
    paths = sorted(directory.glob(f"{prefix}-[0-9]*.*"), key=lambda path: int(path.stem.rsplit("-", 1)[1]))
    runs = [reader(path) for path in paths]
    runs = [run for run in runs if run]
    if not runs:
        return None
    figures = [run["rps"] for run in runs]
    return {"rps": median(figures), "runs": figures}


def in_rounds(name):
    """`NAME (median of N rounds: a / b / c)` when the figure is a median."""
    return lambda figure: (f" (median of {len(figure['runs'])} rounds: {' / '.join(fmt(v) for v in figure['runs'])})"
                           if figure and "runs" in figure else "")


storm_runs = load_lines("storm.jsonl")
storm = {r["label"]: r for r in storm_runs}
wrk_proxy, store_floor = wrk("wrk-echo-proxy"), load("store-floor.json")
if store_floor:
    store_floor = dict(store_floor, rps=store_floor["throughput_per_s"])
# Where the comparisons ran in rounds, their medians are the figures.
by_rounds = {
    "wrk_echo": rounds("wrk-echo-http", lambda path: wrk(f"rounds/{path.stem}")),
    "wrk_proxy": rounds("wrk-echo-proxy", lambda path: wrk(f"rounds/{path.stem}")),
    "wrk_books": rounds("wrk-gateway-books", lambda path: wrk(f"rounds/{path.stem}")),
    "wrk_books_off": rounds("wrk-gateway-books-token-cache-off", lambda path: wrk(f"rounds/{path.stem}")),
    "h2_echo": rounds("h2load-echo-grpc", lambda path: h2load(f"rounds/{path.stem}")),
    "h2_books": rounds("h2load-books-list", lambda path: h2load(f"rounds/{path.stem}")),
    "h2_books_off": rounds("h2load-books-list-token-cache-off", lambda path: h2load(f"rounds/{path.stem}")),
    "store_floor": rounds("store-floor", lambda path: {"rps": json.loads(path.read_text())["throughput_per_s"]}),
}
wrk_echo = by_rounds["wrk_echo"] or wrk_echo
wrk_proxy = by_rounds["wrk_proxy"] or wrk_proxy
wrk_books = by_rounds["wrk_books"] or wrk_books
wrk_books_off = by_rounds["wrk_books_off"] or wrk("wrk-gateway-books-token-cache-off")
h2_echo = by_rounds["h2_echo"] or h2_echo
h2_books = by_rounds["h2_books"] or h2_books
h2_books_off = by_rounds["h2_books_off"] or h2_books_off
store_floor = by_rounds["store_floor"] or store_floor
n = in_rounds("")
scale = {(r["scenario"], r["label"]): r for r in load_lines("scale.jsonl")}
cold = load_lines("cold-start.jsonl")
timing = load("login-timing.json")
by_key = {(r["scenario"], r["concurrency"]): r for r in scenarios}

lines += ["### Targets", "", "| Target | Verdict | Evidence |", "|---|---|---|"]
# The ceiling of a route translated to gRPC: axum -> tonic -> trivial echo.
proxy_flask = f"; ceiling (axum -> tonic -> echo, no work): {fmt(wrk_proxy['rps'])} req/s{n(wrk_proxy)}" if wrk_proxy else ""
if wrk_books and wrk_flask:
    ratio = wrk_books["rps"] / wrk_flask["rps"]
    ceiling = f"{proxy_flask} = {wrk_proxy['rps'] / wrk_flask['rps']:.1f}x" if wrk_proxy else ""
    target("REST `GET /books` >= 25x Flask (wrk -t1 -c16)", ratio >= 25,
           f"{fmt(wrk_books['rps'])}{n(wrk_books)} vs {fmt(wrk_flask['rps'])} req/s = {ratio:.1f}x{ceiling}")
else:
    target("REST `GET /books` >= 25x Flask (wrk -t1 -c16)", None, "Flask or gateway run missing")
if wrk_books and wrk_echo:
    ratio = wrk_books["rps"] / wrk_echo["rps"]
    ceiling = f"{proxy_flask} = {wrk_proxy['rps'] / wrk_echo['rps']:.0%}" if wrk_proxy else ""
    off = (f"; token cache off: {fmt(wrk_books_off['rps'])} req/s{n(wrk_books_off)}" if wrk_books_off else "")
    target("REST `GET /books` >= 40% of trivial axum (wrk -t1 -c16)", ratio >= 0.40,
           f"{fmt(wrk_books['rps'])} vs {fmt(wrk_echo['rps'])}{n(wrk_echo)} req/s = {ratio:.0%}{ceiling}{off}")
if h2_books and h2_echo:
    ratio = h2_books["rps"] / h2_echo["rps"]
    off = (f"; token cache off: {fmt(h2_books_off['rps'])} calls/s{n(h2_books_off)} = "
           f"{h2_books_off['rps'] / h2_echo['rps']:.0%}") if h2_books_off else ""
    ceiling = ""
    if store_floor:
        # CPU-bound on the same cores, the costs add: a call costs at least
        # the store's page plus a trivial call.
        floor = store_floor["rps"]
        cap = 1 / (1 / floor + 1 / h2_echo["rps"])
        ceiling = (f"; the store alone (store-floor, 128 at once) {fmt(floor)} pages/s{n(store_floor)}, "
                   f"so the ceiling is 1/(1/{fmt(floor)} + 1/{fmt(h2_echo['rps'])}) = {fmt(cap)} calls/s "
                   f"= {cap / h2_echo['rps']:.0%} of echo")
    target("gRPC `ListBooks` >= 50% of tonic echo (h2load -c16 -m8)", ratio >= 0.50,
           f"{fmt(h2_books['rps'])}{n(h2_books)} vs {fmt(h2_echo['rps'])}{n(h2_echo)} calls/s = {ratio:.0%}{off}{ceiling}")
logins = [r for r in scenarios if r["scenario"] == "login"]
if bound and logins:
    best = max(logins, key=lambda r: r["throughput_per_s"])
    ratio = best["throughput_per_s"] / max(bound["bound_per_s"], 1e-9)
    target("`Login` >= 90% of the argon2 bound", ratio >= 0.90,
           f"best {best['throughput_per_s']:.1f}/s at c={best['concurrency']} vs bound {bound['bound_per_s']:.1f}/s "
           f"({bound['cores']} cores / {bound['single_hash_ms']:.2f} ms) = {ratio:.0%}; "
           f"{bound['parallel_threads']} bare threads hashing measured {bound['parallel_hashes_per_s']:.1f}/s")
def control_evidence(idle, busy):
    """The storm beside its control: shell busy loops at SCHED_IDLE, no Bookstore code."""
    controls = [r["latency"]["p99_us"] for r in storm_runs if r["label"] == "control"]
    if not controls:
        return ""
    control = median(controls)
    return (f". Control, one SCHED_IDLE shell busy loop per core and no login: p99 {ms(control)} ms = "
            f"{control / max(idle, 1):.1f}x idle ({', '.join(ms(v) for v in controls)} ms); the storm is "
            f"{busy / max(control, 1):.2f}x the control")


if "idle" in storm and "storm" in storm:
    idles = [r["latency"]["p99_us"] for r in storm_runs if r["label"] == "idle"]
    busies = [r["latency"]["p99_us"] for r in storm_runs if r["label"] == "storm"]
    idle, busy = median(idles), median(busies)
    logins_per_s = median([r["storm"]["throughput_per_s"] for r in storm_runs if r["label"] == "storm" and r.get("storm")] or [0])
    target("`GET /books` p99 during a login storm <= 3x idle", busy <= 3 * idle if idle else None,
           f"median p99 {ms(busy)} ms vs idle {ms(idle)} ms = {busy / max(idle, 1):.1f}x (c=4; storm of "
           f"{storm['storm']['storm']['concurrency']} login workers at a median {logins_per_s:.1f} logins/s; "
           f"{len(busies)} pairs, p99s idle {', '.join(ms(v) for v in idles)} / storm {', '.join(ms(v) for v in busies)} ms)"
           + control_evidence(idle, busy))
for scenario in ("grpc-list-books", "rest-list-books"):
    keys = [(scenario, label) for label in ("small-first", "small-deep", "big-first", "big-deep")]
    if all(k in scale for k in keys):
        p50 = {label: scale[(scenario, label)]["latency"]["p50_us"] for _, label in keys}
        first = p50["big-first"] / max(p50["small-first"], 1)
        deep = p50["big-deep"] / max(p50["small-deep"], 1)
        target(f"1,000,000 books: {scenario} pages within 1.5x of a 100-book user", first <= 1.5 and deep <= 1.5,
               f"p50 first page {ms(p50['big-first'])} vs {ms(p50['small-first'])} ms ({first:.2f}x), "
               f"deep page {ms(p50['big-deep'])} vs {ms(p50['small-deep'])} ms ({deep:.2f}x)")
mixed = [r for r in scenarios if r["scenario"] == "mixed"]
if mixed:
    hashes = int(machine.get("env", {}).get("AUTH_MAX_CONCURRENT_HASHES", 2))
    peaks = {}
    for run in mixed:
        for m in run["memory"]:
            peaks[m["name"]] = max(peaks.get(m["name"], 0), m["peak_rss_kib"] / MIB)
    limits = {name: 64 + (ARGON2_MIB * hashes if name == "auth-service" else 0) for name in peaks}
    ok = all(peaks[n] <= limits[n] for n in peaks)
    target("Memory under mixed load < 64 MiB + argon2 working set", ok,
           ", ".join(f"{n} peak {peaks[n]:.1f} MiB (limit {limits[n]:.0f})" for n in sorted(peaks)))
if cold:
    worst = max(max(c["ready_ms"]) for c in cold)
    target("Cold start: health SERVING <= 300 ms after exec (SQLite)", worst <= 300,
           "; ".join(f"{c['name']} median {c['median_ms']:.0f} ms, max {c['max_ms']:.0f} ms "
                     f"(first start {c['ready_ms'][0]:.0f} ms)" for c in cold))
if timing:
    u, w = timing["unknown_user"], timing["wrong_password"]
    close = abs(timing["median_difference_us"]) <= 0.1 * w["p50_us"]
    target("Login: unknown user and wrong password take the same time (issue 5)", close,
           f"p50 {ms(u['p50_us'])} vs {ms(w['p50_us'])} ms, mean {u['mean_us'] / 1000:.2f} vs {w['mean_us'] / 1000:.2f} ms "
           f"({timing['samples']} each, alternating, one at a time; {timing['unexpected']} unexpected answers)")
lines.append("")

# Scenario table.
lines += ["### bookstore-bench scenarios (closed loop, one connection per worker)", "",
          "| Scenario | Concurrency | Throughput /s | p50 ms | p99 ms | p99.9 ms | Errors | Peak RSS auth / books / gateway MiB |",
          "|---|---|---|---|---|---|---|---|"]
for r in scenarios:
    mem = {m["name"]: m["peak_rss_kib"] / MIB for m in r["memory"]}
    rss = " / ".join(f"{mem[n]:.1f}" for n in ("auth-service", "books-service", "gateway") if n in mem) or \
        " / ".join(f"{v:.1f} ({k})" for k, v in mem.items())
    lat = r["latency"]
    lines.append(f"| {r['scenario']} | {r['concurrency']} | {fmt(r['throughput_per_s'])} | {ms(lat['p50_us'])} | "
                 f"{ms(lat['p99_us'])} | {ms(lat['p999_us'])} | {r['errors']} | {rss} |")
lines.append("")


def run_table(title, rows):
    out = [f"### {title}", "", "| Scenario | Label | Concurrency | Throughput /s | p50 ms | p99 ms | Errors |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = r["latency"]
        out.append(f"| {r['scenario']} | {r['label']} | {r['concurrency']} | {fmt(r['throughput_per_s'])} | "
                   f"{ms(lat['p50_us'])} | {ms(lat['p99_us'])} | {r['errors']} |")
    return out + [""]


for title, name in (("Login storm", "storm.jsonl"), ("Verified-token cache off (BOOKS_TOKEN_CACHE_CAPACITY=0)", "token-cache-off.jsonl"),
                    ("Pinned: generator on CPU 0, server on CPU 1", "pinned.jsonl"), ("Scale: 1,000,000 books vs 100", "scale.jsonl")):
    rows = load_lines(name)
    if rows:
        lines += run_table(title, rows)

# External tools.
lines += ["### wrk and h2load", "", "| Run | Tool | req/s | Latency |", "|---|---|---|---|"]
for name in ("wrk-gateway-books", "wrk-gateway-books-token-cache-off", "wrk-gateway-books-pinned", "wrk-gateway-books-1m-no-limit",
             "wrk-gateway-login", "wrk-echo-http", "wrk-echo-proxy", "wrk-echo-http-pinned", "wrk-flask-books"):
    w = wrk(name)
    if w:
        errs = f", {w['non2xx']} non-2xx, {w['socket_errors']} socket errors" if w["non2xx"] or w["socket_errors"] else ""
        lines.append(f"| {name} | wrk -t1 -c16 | {fmt(w['rps'])} | p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms{errs} |")
for name in ("h2load-books-list", "h2load-books-list-token-cache-off", "h2load-books-list-pinned", "h2load-echo-grpc",
             "h2load-echo-grpc-pinned", "h2load-validate-token"):
    h = h2load(name)
    if h:
        lines.append(f"| {name} | h2load -c16 -m8 | {fmt(h['rps'])} | mean {h.get('mean_ms', 0):.2f} ms at 128 in flight, "
                     f"{h.get('failed', 0)} failed |")
lines.append("")

# Other measurements.
seed, nolimit = load("scale-seed.json"), load("scale-no-limit.json")
if seed:
    lines += [f"Scale seed: {seed['books']:,} books inserted with one SQL statement in {seed['seconds']:.1f} s "
              f"(books.db {seed['db_bytes'] / 2**20:.0f} MiB); query plan of a page: `{seed['query_plan'].strip()}`.", ""]
if nolimit:
    lines += [f"`GET /books` without a limit for the 1,000,000-book user: HTTP {nolimit['status']}, "
              f"{nolimit['bytes']:,} bytes in {nolimit['seconds'] * 1000:.1f} ms (one default page).", ""]
if timing:
    lines += ["Login timing (gRPC `Login`, one call at a time, alternating):", "",
              "| Case | mean ms | p50 ms | p90 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    for case in ("unknown_user", "wrong_password"):
        t = timing[case]
        lines.append(f"| {case.replace('_', ' ')} | {t['mean_us'] / 1000:.2f} | {ms(t['p50_us'])} | {ms(t['p90_us'])} | "
                     f"{ms(t['p99_us'])} | {ms(t['max_us'])} |")
    lines.append("")
for name in ("hash-bound.json", "hash-bound-1cpu.json"):
    b = load(name)
    if b:
        lines.append(f"argon2id m=19456 KiB t=2 p=1 ({name}): {b['single_hash_ms']:.2f} ms per hash on one thread, "
                     f"bound {b['bound_per_s']:.1f}/s on {b['cores']} cores; {b['parallel_threads']} threads measured "
                     f"{b['parallel_hashes_per_s']:.1f}/s.")
lines += ["", "![throughput vs concurrency](docs/bench/throughput.svg)", "",
          "![p99 latency vs concurrency](docs/bench/p99.svg)", ""]

text = "\n".join(lines)
(RESULTS / "tables.md").write_text(text)
(RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
if BENCHMARKS and BENCHMARKS.exists():
    doc = BENCHMARKS.read_text()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        BENCHMARKS.write_text(head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1])

# Charts.
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib not importable: no charts", file=sys.stderr)
    sys.exit(0)
CHARTS.mkdir(parents=True, exist_ok=True)
plt.rcParams["svg.hashsalt"] = "bookstore"  # stable ids, smaller diffs
names = sorted({r["scenario"] for r in scenarios}, key=lambda s: [r["scenario"] for r in scenarios].index(s))
for metric, file, ylabel, log in (("throughput", "throughput.svg", "requests per second", True),
                                   ("p99", "p99.svg", "p99 latency (ms)", True)):
    fig, ax = plt.subplots(figsize=(8, 5))
    for name in names:
        rows = sorted((r for r in scenarios if r["scenario"] == name), key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in rows]
        ys = [r["throughput_per_s"] if metric == "throughput" else r["latency"]["p99_us"] / 1000 for r in rows]
        style = "--" if name.startswith("echo") else "-"
        ax.plot(xs, ys, style, marker="o", label=name)
    if metric == "throughput" and bound:
        ax.axhline(bound["bound_per_s"], color="grey", linestyle=":", label="argon2 bound (Login)")
    ax.set_xscale("log", base=2)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("concurrency (closed-loop workers, one connection each)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Bookstore, {machine.get('cores', '?')} cores, generator on the same cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(CHARTS / file, metadata={"Date": None})
    plt.close(fig)
