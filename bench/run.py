"""Every benchmark in one run: `make bench` (or `.venv/bin/python bench/run.py [options]`).

  1. overhead  per photo size (1, 4, 12 MP real photos from scikit-image, resized): pure model
               time (session.run, with the service's session options and with ORT's defaults),
               rembg.remove() in process, this service end to end over HTTP; medians, p95, ratios,
               and the mask IoU against rembg. The contenders run round-robin, one call each per
               round, so the machine's noise falls on all of them alike, and the order turns by
               one each round, so none always runs right after the same neighbour.
  2. peer      rembg's own server (`rembg s`, installed in bench/out/rembg-venv, the same u2netp
               weights through U2NET_HOME) and this service under the same closed-loop load
               (concurrency 1, 2, 4, 8) on loopback, the same photos: images/s, p50, p99, errors,
               peak RSS of each server. Writes bench/out/latency_vs_concurrency.png.
  3. soak      --soak-count cutouts (2,000) against one server process, RSS every 100.
  4. ledger    bench/ledger.py's reserve+capture throughput, in the same table format.

Everything printed is also written to bench/out/report.txt, the numbers to bench/out/results.json.
`--baseline DIR` adds a second copy of this service, served from another checkout (e.g.
`git worktree add /tmp/base HEAD~1`), to the overhead rounds: before/after in one run.
This machine is shared and noisy: compare the ratios measured side by side, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from common import ROOT, photo_jpeg  # noqa: E402  (also puts ROOT on sys.path, sets U2NET_HOME)
from load import RssSampler, ServerProcess, closed_loop, cpu_count, mib  # noqa: E402
from report import LINES, median, percentile, say, table  # noqa: E402
import peer  # noqa: E402

from tests.live import free_port, server_env  # noqa: E402

MODELS = ROOT / "models"
OUT = BENCH / "out"
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")
PLOT = OUT / "latency_vs_concurrency.png"


# --------------------------------------------------------------------------------------- servers

SCRATCH: list[Path] = []  # each server's database, blobs and log; removed at the end


def our_server(name: str, tree: Path, extra_env: dict[str, str]) -> ServerProcess:
    tmp = Path(tempfile.mkdtemp(prefix="bench-", dir=OUT))
    SCRATCH.append(tmp)
    env = server_env(tmp, TRIALZONE_MODELS="u2netp", TRIALZONE_MODELS_DIR=str(MODELS), **extra_env)
    port = free_port()
    argv = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    return ServerProcess(name, argv, cwd=tree, env=env, port=port, ready_path="/readyz",
                         log_path=tmp / "server.log").start()


class Users:
    """A fresh user every 15 cutouts (the welcome gift pays for 16), one per client at a time, so
    no per-user limit is hit and every request is a paid cutout through the whole ledger path."""

    def __init__(self, tag: str):
        self.tag = f"{tag}-{time.time_ns()}"
        self.counts: dict[int, int] = {}

    def __call__(self, client: int) -> str:
        n = self.counts.get(client, 0)
        self.counts[client] = n + 1
        return f"{self.tag}-c{client}-u{n // 15}"


def cutout(http: httpx.Client, data: bytes, user: str) -> httpx.Response:
    return http.post("/v1/operations/cutout", files={"image": ("photo.jpg", data, "image/jpeg")},
                     headers={"X-User-Id": user})


def alpha(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))[:, :, 3]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a >= 128, b >= 128
    return float((a & b).sum() / max((a | b).sum(), 1))


# -------------------------------------------------------------------------------------- overhead

def overhead(args, results: dict) -> None:
    import onnxruntime as ort
    from rembg import new_session, remove

    from app.inference.families import u2net
    from app.inference.providers import session_options
    from app.settings import Settings

    settings = Settings.from_env({**os.environ, **args.server_env})
    ours_options = session_options(settings.inference_threads, spinning=settings.inference_spinning,
                                   mem_arena=settings.inference_mem_arena, mem_pattern=settings.inference_mem_pattern)
    session = ort.InferenceSession(str(MODELS / "u2netp.onnx"), ours_options, providers=["CPUExecutionProvider"])
    rembg_session = new_session("u2netp", providers=["CPUExecutionProvider"])  # ORT's default options

    servers = [our_server("service", ROOT, args.server_env)]
    if args.baseline:
        servers.append(our_server("baseline", Path(args.baseline).resolve(), args.server_env))
    clients = {s.name: httpx.Client(base_url=s.url, timeout=300) for s in servers}
    users = Users("overhead")

    def service(name: str, data: bytes) -> bytes:
        response = cutout(clients[name], data, users(hash(name) % 1000))
        response.raise_for_status()
        return response.content

    def run_seconds(name: str) -> float:
        """The server's time inside session.run so far (its metrics); not timed in the rounds."""
        text = clients[name].get("/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("trialzone_inference_seconds_sum"))

    rows, cpu_rows, record = [], [], []
    try:
        for mp in args.sizes:
            data = photo_jpeg(mp, "chelsea")
            photo = Image.open(io.BytesIO(data))
            feeds = u2net.preprocess(photo.convert("RGB"))
            contenders = {
                "pure": lambda: session.run(None, feeds),
                "ort-default": lambda: rembg_session.inner_session.run(None, feeds),
                "rembg": lambda: remove(data, session=rembg_session),
                **{s.name: (lambda n=s.name: service(n, data)) for s in servers},
            }
            for fn in contenders.values():  # warm every path once
                fn()
            # CPU seconds too: what each cutout costs in cores, whatever else runs on this machine
            # (in process: all of this process's threads; the service: its server process's).
            cpu_clocks = {name: time.process_time for name in ("pure", "ort-default", "rembg")}
            cpu_clocks.update({s.name: (lambda p=psutil.Process(s.pid): sum(p.cpu_times()[:2])) for s in servers})
            samples: dict[str, list[float]] = {name: [] for name in contenders}
            cpu: dict[str, list[float]] = {name: [] for name in contenders}
            # Per request, its latency minus its own session.run: the time around the model, which
            # the model's noise (+-5 % here from run to run) does not blur.
            around: dict[str, list[float]] = {s.name: [] for s in servers}
            names = list(contenders)
            for round_ in range(args.repeat):
                # The order turns by one each round: no contender always follows rembg.remove(),
                # whose session (ORT's defaults) leaves its threads spinning for a while after a run.
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    fn = contenders[name]
                    ran = run_seconds(name) if name in around else 0.0
                    cpu_started, started = cpu_clocks[name](), time.perf_counter()
                    fn()
                    samples[name].append(time.perf_counter() - started)
                    cpu[name].append(cpu_clocks[name]() - cpu_started)
                    if name in around:
                        around[name].append(samples[name][-1] - (run_seconds(name) - ran))

            overlaps = {}
            for name in PHOTOS[:3]:  # the mask check: ours vs rembg on three photos at this size
                photo_data = data if name == "chelsea" else photo_jpeg(mp, name)
                theirs = alpha(remove(photo_data, session=rembg_session))
                overlaps[name] = {s.name: iou(alpha(service(s.name, photo_data)), theirs) for s in servers}
            p50 = {n: median(v) for n, v in samples.items()}
            p95 = {n: percentile(v, 95) for n, v in samples.items()}
            size = f"{photo.width}x{photo.height}"
            a50 = {n: median(v) * 1000 for n, v in around.items()}
            row = [f"{mp:g} MP", size, p50["pure"], p95["pure"], p50["ort-default"], p50["rembg"], p95["rembg"],
                   p50["service"], p95["service"], p50["service"] / p50["pure"], p50["rembg"] / p50["service"],
                   min(o["service"] for o in overlaps.values()), a50["service"]]
            if args.baseline:
                row += [p50["baseline"], p50["baseline"] / p50["service"],
                        min(o["baseline"] for o in overlaps.values()), a50["baseline"]]
            rows.append(row)
            c50 = {n: median(v) for n, v in cpu.items()}
            cpu_row = [f"{mp:g} MP", c50["pure"], c50["rembg"], c50["service"], c50["service"] / c50["pure"],
                       c50["rembg"] / c50["service"]]
            if args.baseline:
                cpu_row += [c50["baseline"], c50["baseline"] / c50["service"]]
            cpu_rows.append(cpu_row)
            record.append({"megapixels": mp, "size": size, "samples": samples, "cpu": cpu, "iou": overlaps,
                           "around_model": around})
    finally:
        for client in clients.values():
            client.close()
        for server in servers:
            server.stop()

    headers = ["photo", "pixels", "pure p50", "p95", "ort-dflt p50", "rembg p50", "p95", "service p50", "p95",
               "svc/pure", "rembg/svc", "IoU min", "around ms"]
    if args.baseline:
        headers += ["baseline p50", "base/svc", "base IoU", "base around"]
    notes = [
        f"seconds; {args.repeat} rounds, each contender once per round, the order turning by one each round; "
        f"u2netp on CPU ({cpu_count()} cores)",
        "pure = session.run with the service's session options; ort-dflt = the same with ORT's defaults "
        "(as rembg runs it)",
        "service = POST /v1/operations/cutout over loopback HTTP: upload, ledger hold+capture, "
        "result stored, PNG back",
        "IoU min = the lowest mask IoU (alpha >= 128) against rembg.remove over chelsea, astronaut, coffee",
        "around ms = median over requests of (latency - that request's own session.run, from the server's "
        "/metrics): the service's overhead, without the model's run-to-run noise",
        "goals: 1 MP svc/pure <= 1.2; 12 MP rembg/svc >= 3 with IoU >= 0.99",
    ]
    table("1. Overhead vs the inference floor (chelsea, phone-quality JPEG)", headers, rows, notes)
    table("   CPU seconds per cutout (median; the same rounds)",
          ["photo", "pure", "rembg", "service", "svc/pure", "rembg/svc"]
          + (["baseline", "base/svc"] if args.baseline else []), cpu_rows,
          ["service = the server process's user+system time for the request (the client's is not counted)"])
    results["overhead"] = record


# ------------------------------------------------------------------------------------------ peer

def peer_comparison(args, results: dict) -> None:
    say()
    say(f"2. starting `rembg s` ({peer.SPEC} in {peer.venv_dir(OUT)}) and this service ...")
    photos = [photo_jpeg(args.peer_mp, name) for name in PHOTOS]
    rembg_server = peer.server(OUT, MODELS, free_port(), OUT / "rembg-server.log").start(timeout=900)
    say(f"   peer: {peer.versions(OUT)}")
    ours = our_server("service", ROOT, args.server_env)
    users = Users("peer")
    senders = {
        "this service": (ours, lambda http, c, i: cutout(http, photos[i % len(photos)], users(c))),
        "rembg s": (rembg_server, lambda http, c, i: peer.send(http, photos[i % len(photos)])),
    }
    record: dict[str, list[dict]] = {name: [] for name in senders}
    rows = []
    try:
        for name, (server, send) in senders.items():  # warm: sessions made, every photo seen once
            closed_loop(server.url, send, concurrency=1, requests=len(photos))
        for concurrency in args.concurrency:
            # Each level runs in chunks that alternate between the servers (the order flipping every
            # chunk), so a burst of load from elsewhere on this shared machine falls on both alike.
            per_chunk = max(8, 3 * concurrency)
            chunks = max(1, -(-max(args.peer_requests, per_chunk) // per_chunk))
            loads: dict[str, list] = {name: [] for name in senders}
            peaks = {name: 0 for name in senders}
            cpu = {name: 0.0 for name in senders}
            order = list(senders)
            for chunk in range(chunks):
                for name in order if chunk % 2 == 0 else order[::-1]:
                    server, send = senders[name]
                    cpu_before = server.cpu_seconds()
                    with RssSampler(server) as rss:
                        loads[name].append(closed_loop(server.url, send, concurrency=concurrency,
                                                       requests=per_chunk))
                    cpu[name] += server.cpu_seconds() - cpu_before
                    peaks[name] = max(peaks[name], rss.peak)
            for name in senders:
                latencies = [x for load in loads[name] for x in load.latencies]
                errors: dict[str, int] = {}
                for load in loads[name]:
                    for kind, count in load.errors.items():
                        errors[kind] = errors.get(kind, 0) + count
                elapsed = sum(load.elapsed for load in loads[name])
                entry = {"concurrency": concurrency, "requests": chunks * per_chunk,
                         "images_per_s": len(latencies) / elapsed, "p50": median(latencies),
                         "p99": percentile(latencies, 99), "errors": errors, "peak_rss_mib": mib(peaks[name]),
                         "cpu_s_per_image": cpu[name] / max(len(latencies), 1), "latencies": latencies}
                record[name].append(entry)
                rows.append([name, concurrency, chunks * per_chunk, entry["images_per_s"], entry["p50"],
                             entry["p99"], sum(errors.values()), entry["cpu_s_per_image"],
                             round(mib(peaks[name]))])
        hwm = {name: round(mib(server.peak_rss())) for name, (server, _) in senders.items()}
    finally:
        ours.stop()
        rembg_server.stop()

    ratio_rows = []
    for ours_entry, theirs in zip(record["this service"], record["rembg s"]):
        ratio_rows.append([ours_entry["concurrency"], ours_entry["images_per_s"] / theirs["images_per_s"],
                           theirs["p99"] / ours_entry["p99"], theirs["p50"] / ours_entry["p50"],
                           theirs["cpu_s_per_image"] / ours_entry["cpu_s_per_image"]])
    table(f"2. Against the peer server, closed loop, {args.peer_mp:g} MP photos ({', '.join(PHOTOS)} in turn)",
          ["server", "conc.", "requests", "images/s", "p50 s", "p99 s", "errors", "CPU s/image", "peak RSS MiB"],
          rows,
          ["peak RSS: sampled every 50 ms during each level; high-water mark over the whole run (VmHWM): "
           + ", ".join(f"{k} {v} MiB" for k, v in hwm.items()),
           "both servers up for the whole section; each level in chunks of max(8, 3 x conc.) requests "
           "alternating between them; images/s = answers / time under load"])
    table("   ratios (this service vs rembg s)",
          ["conc.", "images/s x", "p99 rembg/ours", "p50 rembg/ours", "CPU/image rembg/ours"], ratio_rows,
          ["goal at concurrency 4: images/s x >= 1.3, p99 lower (ratio > 1), no errors",
           "CPU/image: each server process's user+system seconds per answered image; unlike images/s it "
           "does not depend on how much of the machine other processes leave (rembg s runs more threads, "
           "so it gets a larger share of a contended machine)"])
    results["peer"] = {"levels": record, "vmhwm_mib": hwm, "photo_mp": args.peer_mp}
    plot(record, args)


def plot(record: dict[str, list[dict]], args) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("   (no plot: matplotlib is not installed; `pip install -e .[bench]`)")
        return
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for (name, entries), colour in zip(record.items(), ("tab:blue", "tab:orange")):
        levels = [e["concurrency"] for e in entries]
        lat.plot(levels, [e["p50"] for e in entries], "o-", color=colour, label=f"{name} p50")
        lat.plot(levels, [e["p99"] for e in entries], "s--", color=colour, label=f"{name} p99")
        thr.plot(levels, [e["images_per_s"] for e in entries], "o-", color=colour, label=name)
    for axis, label in ((lat, "latency, s"), (thr, "images/s")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(args.concurrency, [str(c) for c in args.concurrency])
        axis.set_xlabel("concurrent clients (closed loop)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    lat.set_ylim(bottom=0)
    thr.set_ylim(bottom=0)
    fig.suptitle(f"cutout, u2netp on CPU ({cpu_count()} cores), {args.peer_mp:g} MP photos, loopback")
    fig.tight_layout()
    fig.savefig(PLOT)
    plt.close(fig)
    say(f"   plot: {PLOT.relative_to(ROOT)}")


# ------------------------------------------------------------------------------------------ soak

def soak(args, results: dict) -> None:
    photos = [photo_jpeg(args.soak_mp, name) for name in PHOTOS]
    server = our_server("service", ROOT, args.server_env)
    users = Users("soak")
    samples: list[tuple[int, float, float]] = [(0, mib(server.rss()), 0.0)]
    started = time.perf_counter()

    def progress(done: int) -> None:
        if done % 100 == 0:
            samples.append((done, mib(server.rss()), time.perf_counter() - started))

    try:
        load = closed_loop(server.url, lambda http, c, i: cutout(http, photos[i % len(photos)], users(c)),
                           concurrency=args.soak_concurrency, requests=args.soak_count, on_progress=progress)
    finally:
        hwm = mib(server.peak_rss())
        server.stop()
    samples.sort()
    base = samples[0][1]
    rows = [[done, rss, rss - base, elapsed] for done, rss, elapsed in samples]
    growth, settled = samples[-1][1] - base, samples[-1][1] - (samples[1][1] if len(samples) > 1 else base)
    late = [(done, rss) for done, rss, _ in samples if done >= min(500, args.soak_count // 4)]
    slope = float(np.polyfit(*zip(*late), 1)[0]) * 1000 if len(late) >= 3 else float("nan")  # MiB per 1,000
    table(f"3. Soak: {args.soak_count:,} cutouts against one server process ({args.soak_mp:g} MP photos, "
          f"{args.soak_concurrency} clients)", ["requests", "RSS MiB", "growth MiB", "elapsed s"], rows,
          [f"growth over the run: {growth:+.1f} MiB from the warmed-up start, {settled:+.1f} MiB after the first "
           f"100; high-water mark {hwm:.0f} MiB; {load.throughput:.2f} cutouts/s; errors: "
           f"{load.error_count} {load.errors or ''}".rstrip(),
           f"trend from request {late[0][0] if late else '-'} on (least squares): {slope:+.2f} MiB per 1,000 "
           "requests (a leak shows here; steps before it are threads and allocator arenas filling)",
           "goal: growth < 50 MB over 2,000 requests"])
    results["soak"] = {"samples": samples, "growth_mib": growth, "growth_after_100_mib": settled,
                       "slope_mib_per_1000": slope,
                       "errors": load.errors, "throughput": load.throughput, "vmhwm_mib": hwm}


# ---------------------------------------------------------------------------------------- ledger

def ledger(args, results: dict) -> None:
    title = "4. Ledger: reserve+capture pairs/s (bench/ledger.py)"
    try:
        module = importlib.import_module("ledger")
    except Exception as exc:  # written by another issue; may be missing or mid-change
        say()
        say(f"{title}: skipped, bench/ledger.py could not be imported ({type(exc).__name__}: {exc})")
        return
    runs = getattr(module, "_run", None)
    if runs is None:
        main = getattr(module, "main", None)
        say()
        if main is None:
            say(f"{title}: skipped, bench/ledger.py has no main entry")
            return
        say(f"{title}: its own output")
        argv, sys.argv = sys.argv, ["ledger.py", "--only", "sqlite", "--seconds", str(args.ledger_seconds)]
        try:
            outcome = main()
            if asyncio.iscoroutine(outcome):
                asyncio.run(outcome)
        finally:
            sys.argv = argv
        return
    databases = {"SQLite": ("sqlite", None, None)}
    pg = os.environ.get("TRIALZONE_TEST_PG_URL") or getattr(module, "DEFAULT_PG", None)
    if pg and args.ledger_pg:
        for suffix, stored_functions in module.PG_VARIANTS:
            databases["PostgreSQL" + suffix] = ("pg", pg, stored_functions)
    rows, notes, record = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (kind, url, stored_functions) in databases.items():
            try:
                if kind == "sqlite":
                    found, problems = asyncio.run(module._run("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db",
                                                              args.ledger_seconds))
                else:
                    found, problems = asyncio.run(module.run_postgres(url, args.ledger_seconds, stored_functions))
            except Exception as exc:
                notes.append(f"{label}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
                continue
            record[label] = {"pairs_per_s": found, "audit_problems": problems}
            rows.append([label, *[round(v) for v in found.values()],
                         "every invariant holds" if not problems else f"FAILED ({len(problems)})"])
            columns = list(found)
    if not rows:
        say()
        say(f"{title}: skipped")
        for note in notes:
            say(f"  {note}")
        return
    table(title, ["database", *[f"{c} clients" for c in columns], "ledger audit"], rows,
          [f"{args.ledger_seconds:g} s per cell; each client its own user, '/1 user' = all clients on one user",
           *notes])
    results["ledger"] = record


# --------------------------------------------------------------------------------------- profile

def profile_section(args, results: dict) -> None:
    import profile_cutout as stages

    record = {}
    for mp in args.sizes:
        out = OUT / f"profile-{mp:g}mp.txt"
        medians = stages.profile(mp, args.repeat, out)
        total = sum(medians.values())
        table(f"Profile: cutout stages at {mp:g} MP, one thread, median of {args.repeat} "
              f"(pyinstrument tree: bench/out/{out.name})",
              ["stage", "seconds", "share"], [[n, v, f"{v / total:.0%}"] for n, v in medians.items()])
        record[mp] = medians
    results["profile"] = record


# ------------------------------------------------------------------------------------------ main

def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    numbers = lambda kind: (lambda text: [kind(x) for x in text.split(",") if x])  # noqa: E731
    parser.add_argument("--sections", type=lambda t: t.split(","), default=["overhead", "peer", "soak", "ledger"],
                        help="any of overhead, peer, soak, ledger, profile (default: all but profile)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per photo size in section 1")
    parser.add_argument("--sizes", type=numbers(float), default=[1, 4, 12], help="megapixels, section 1")
    parser.add_argument("--baseline", help="another checkout of this service to measure alongside (section 1)")
    parser.add_argument("--concurrency", type=numbers(int), default=[1, 2, 4, 8])
    parser.add_argument("--peer-requests", type=int, default=40, help="requests per level and server")
    parser.add_argument("--peer-mp", type=float, default=1.0)
    parser.add_argument("--soak-count", type=int, default=2000)
    parser.add_argument("--soak-mp", type=float, default=0.25)
    parser.add_argument("--soak-concurrency", type=int, default=2)
    parser.add_argument("--ledger-seconds", type=float, default=2.0)
    parser.add_argument("--ledger-pg", action="store_true", help="also PostgreSQL (TRIALZONE_TEST_PG_URL)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra TRIALZONE_* settings for this service's processes (repeatable)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer rounds, requests and sizes")
    args = parser.parse_args(argv)
    args.server_env = dict(item.split("=", 1) for item in args.server_env)
    if args.quick:
        args.repeat, args.sizes, args.concurrency = 3, [1, 12], [1, 4]
        args.peer_requests, args.soak_count, args.ledger_seconds = 8, 200, 0.5
    return args


def main(argv=None) -> int:
    args = parse(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": {k: v for k, v in vars(args).items()}, "machine": {
        "cpus": cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "load_average_at_start": os.getloadavg()}}
    say(f"trialzone bench: {cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start, "
        f"sections {', '.join(args.sections)}")
    started = time.perf_counter()
    sections = {"overhead": overhead, "peer": peer_comparison, "soak": soak, "ledger": ledger,
                "profile": profile_section}
    try:
        for name in args.sections:
            section_started = time.perf_counter()
            sections[name](args, results)
            say(f"   ({name}: {time.perf_counter() - section_started:.0f} s)")
    finally:
        for path in SCRATCH:
            shutil.rmtree(path, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    say()
    say(f"done in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (OUT / "report.txt").write_text("\n".join(LINES) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
