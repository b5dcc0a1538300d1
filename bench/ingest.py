"""DICOM C-STORE throughput of neurodepot's listener next to dcmtk storescp and Orthanc, one run.

Measured: seconds from launching dcmtk `storescu` until it exits (every C-STORE acknowledged), as
instances/s and MB/s (10^6 bytes of files sent). storescu must exit 0 and the receiver must then
hold every instance (storescp: files in its folder; Orthanc: `CountInstances` of `/statistics`;
neurodepot: the sum of `instance_count` in `prearchive list --json`), else the benchmark fails.
Receivers, started afresh with empty storage for every measurement: `neurodepot serve` on a new
depot (SQLite, or PostgreSQL in a private schema with `--database-url`) with project BENCH and a
1 h prearchive quiet period, so nothing is archived meanwhile; `storescp --fork` (a file per
instance, no fsync, a process per association); Orthanc (SQLite index, one fsync per file).

Senders, `storescu -aet BENCH -aec <AET> +sd +r 127.0.0.1 <port> <folder>`:
- stock, one association, TCP_NODELAY unset everywhere, as scanners and PACS send. dcmtk then
  stalls ~40 ms per PDU on delayed ACKs (PEERS.md), so only the first `--stock-count` are sent;
- TCP_NODELAY=1, one association, the whole corpus. It is set for storescp and Orthanc too: dcmtk
  reads it on both ends, and with it on one end only the other's replies still stall (~22
  instances/s); PEERS.md's figures are those with both;
- parallel: the corpus split into `--parallel` folders sent by as many concurrent storescu
  (TCP_NODELAY=1 as above), as scanners send several associations at once.

Why: issue 5 asks for a listener faster than Orthanc and at least 0.7x storescp. Figures drift
between runs and machines, so the peers run alongside, interleaved, and ratios of the medians of
`--repeat` runs are printed. The corpus (`--count`, default 2,000 MR slices of ~25 kB) is made from
the GE series of `testdata/dcm_qa_nih`: each pass over its 600 files is a study with fresh UIDs
and StudyComments routing it to project BENCH.

storescp 3.6.7 and Orthanc cannot bind loopback only, so the script re-runs itself (as root) in a
private network namespace with only `lo` up, where a PostgreSQL of this machine is reached through
its Unix socket only (`postgresql+psycopg://postgres@/test?host=/run/postgresql`). All lives
in a temporary folder removed at the end; every wait is bounded.
Run: `.venv/bin/python bench/ingest.py [--quick] [--receivers storescp,orthanc] ...` (`--help`).
"""

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pydicom
from pydicom.uid import generate_uid

SOURCE = Path("/work/shared/testdata/dcm_qa_nih/In/20180918GE")
PROJECT = "BENCH"
CALLING_AET = "BENCH"
HOST = "127.0.0.1"

# Absolute paths: the venv's bin holds pynetdicom's storescu, storescp and echoscu too.
STORESCU = "/usr/bin/storescu"
STORESCP = "/usr/bin/storescp"
ECHOSCU = "/usr/bin/echoscu"
ORTHANC = "/usr/sbin/Orthanc"
NEURODEPOT_CLI = str(Path(sys.executable).with_name("neurodepot"))

NEURODEPOT, STORESCP_NAME, ORTHANC_NAME = "neurodepot", "storescp", "Orthanc"
RECEIVERS = (NEURODEPOT, STORESCP_NAME, ORTHANC_NAME)
SENDERS = ("stock", "nodelay", "parallel")
# Issue 5: neurodepot's instances/s over the peer's at least this (Orthanc: strictly above).
GOALS = {STORESCP_NAME: 0.7, ORTHANC_NAME: 1.0}

READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.2
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0
CLI_TIMEOUT_S = 120.0
PROBE_TIMEOUT_S = 10.0
SEND_TIMEOUT_BASE_S = 60.0
SEND_TIMEOUT_PER_INSTANCE_S = 0.2
LOG_TAIL_CHARS = 3000

Results = dict[tuple[str, str], list[float]]  # seconds per run, by (receiver, sender)


class BenchError(RuntimeError):
    """A receiver or sender misbehaved: the figures would be meaningless."""


@dataclass(frozen=True)
class BenchConfig:
    count: int
    stock_count: int
    parallel: int
    repeat: int
    receivers: tuple[str, ...]
    senders: tuple[str, ...]
    database_url: str | None


@dataclass(frozen=True)
class SendSet:
    """What one measurement sends: one folder per concurrent storescu."""

    sender: str
    label: str
    folders: tuple[Path, ...]
    count: int
    total_bytes: int
    nodelay: bool


@dataclass(frozen=True)
class Receiver:
    """A running receiver; `count` asks it how many instances it holds."""

    name: str
    ae_title: str
    port: int
    count: Callable[[], int]


def _subset(value: str, known: Sequence[str], parser: argparse.ArgumentParser) -> tuple[str, ...]:
    wanted = {name.strip().lower() for name in value.split(",") if name.strip()}
    chosen = tuple(name for name in known if name.lower() in wanted)
    if not chosen or len(chosen) != len(wanted):
        parser.error(f"{value!r}: give a comma-separated subset of {','.join(known).lower()}")
    return chosen


def parse_args(argv: Sequence[str]) -> tuple[BenchConfig, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help="instances sent (default 2000)")
    parser.add_argument("--stock-count", type=int, help="sent by stock storescu (default 200)")
    parser.add_argument("--parallel", type=int, help="concurrent associations (default 4)")
    parser.add_argument("--repeat", type=int, help="runs per measurement, median kept (default 3)")
    parser.add_argument("--receivers", default=",".join(RECEIVERS).lower(), help="(default: all)")
    parser.add_argument("--senders", default=",".join(SENDERS), help="(default: all)")
    parser.add_argument("--quick", action="store_true", help="small corpus, one run")
    parser.add_argument(
        "--database-url", help="PostgreSQL (Unix socket) for neurodepot, a private schema per run"
    )
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = (
        {"count": 300, "stock_count": 50, "parallel": 4, "repeat": 1}
        if args.quick
        else {"count": 2000, "stock_count": 200, "parallel": 4, "repeat": 3}
    )
    values = {k: d if getattr(args, k) is None else getattr(args, k) for k, d in defaults.items()}
    if min(values.values()) < 1:
        parser.error("--count, --stock-count, --parallel and --repeat must be at least 1")
    if max(values["stock_count"], values["parallel"]) > values["count"]:
        parser.error("--stock-count and --parallel must not exceed --count")
    url = args.database_url
    if url is not None and (not url.startswith("postgresql") or urlsplit(url).hostname):
        parser.error(
            "--database-url: PostgreSQL through its Unix socket (the private network namespace "
            "reaches no TCP server), e.g. postgresql+psycopg://postgres@/test?host=/run/postgresql"
        )
    config = BenchConfig(
        **values,
        receivers=_subset(args.receivers, RECEIVERS, parser),
        senders=_subset(args.senders, SENDERS, parser),
        database_url=url,
    )
    return config, args.in_netns


# --- the private network namespace ---------------------------------------------------------


def reexec_in_private_netns(argv: Sequence[str]) -> None:
    """Replace this process by itself run in a new network namespace with only `lo` up."""
    if os.geteuid() != 0:
        sys.exit("bench/ingest.py needs root: it runs the receivers in a private network namespace")
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    command += [sys.executable, str(Path(__file__).resolve()), "--in-netns", *argv]
    sys.stdout.flush()
    os.execvp(command[0], command)


def check_private_netns() -> None:
    """Refuse to start receivers that listen on every address unless only loopback exists."""
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        raise BenchError(f"--in-netns given, but interfaces {interfaces}: leave it to the script")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# --- the corpus ----------------------------------------------------------------------------


def write_corpus(folder: Path, count: int) -> list[Path]:
    """`count` copies of the GE source files with fresh UIDs; each pass over them is one study."""
    datasets = [pydicom.dcmread(path) for path in sorted(SOURCE.glob("mr_000*/*.dcm"))]
    if not datasets:
        raise BenchError(f"no source files mr_000*/*.dcm in {SOURCE}")
    original_series = [str(ds.SeriesInstanceUID) for ds in datasets]
    folder.mkdir()
    written = []
    study_uid, series_uids = "", {}
    for index in range(count):
        study, position = divmod(index, len(datasets))
        if position == 0:
            study_uid, series_uids = generate_uid(), {}
        ds = datasets[position]
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uids.setdefault(original_series[position], generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyComments = f"Project: {PROJECT} Subject: S01 Session: E{study + 1:02d}"
        written.append(folder / f"{index:05d}.dcm")
        ds.save_as(written[-1])
    return written


def send_set(root: Path, sender: str, chunks: Sequence[Sequence[Path]]) -> SendSet:
    """Hard links to each chunk of corpus files in a folder of its own."""
    folders = []
    for index, chunk in enumerate(chunks):
        folders.append(root / f"{sender}-{index + 1}")
        folders[-1].mkdir()
        for path in chunk:
            os.link(path, folders[-1] / path.name)
    files = [path for chunk in chunks for path in chunk]
    total = sum(path.stat().st_size for path in files)
    nodelay = sender != "stock"
    label = f"{'TCP_NODELAY=1' if nodelay else 'stock storescu'}, {len(chunks)} assoc."
    return SendSet(sender, label, tuple(folders), len(files), total, nodelay)


def build_send_sets(root: Path, config: BenchConfig) -> list[SendSet]:
    files = write_corpus(root / "corpus", config.count)
    bounds = [len(files) * part // config.parallel for part in range(config.parallel + 1)]
    parts = [files[start:end] for start, end in itertools.pairwise(bounds)]
    chunks = {"stock": [files[: config.stock_count]], "nodelay": [files], "parallel": parts}
    return [send_set(root, sender, chunks[sender]) for sender in config.senders]


# --- processes, bounded --------------------------------------------------------------------


def log_tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text[-LOG_TAIL_CHARS:].strip() or "(no output)"


def run_cli(command: Sequence[str], env: dict[str, str]) -> str:
    """Run a short command; its failure or a timeout raises with its output."""
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{' '.join(command)} took more than {CLI_TIMEOUT_S} s") from error
    if done.returncode != 0:
        output = f"{done.stdout}{done.stderr}"[-LOG_TAIL_CHARS:].strip()
        raise BenchError(f"{' '.join(command)} exited {done.returncode}:\n{output}")
    return done.stdout


def dcmtk_env(nodelay: bool) -> dict[str, str]:
    """The environment with TCP_NODELAY=1 (dcmtk reads it on both ends) or without it."""
    env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    return {**env, "TCP_NODELAY": "1"} if nodelay else env


@dataclass(frozen=True)
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited {code}; its log:\n{log_tail(self.log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, then after a bounded wait SIGKILL to its whole process group (its session)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)
    # Also what it leaves behind: Dask workers, storescp's forked children.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(KILL_TIMEOUT_S)


@contextmanager
def running(name: str, command: Sequence[str], log: Path, env: dict[str, str]) -> Iterator[Service]:
    """A process in its own session (so that its children can be ended), stopped on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, start_new_session=True)
    try:
        yield Service(name, process, log)
    finally:
        stop(process)


def wait_until_ready(service: Service, ready: Callable[[], bool], what: str) -> None:
    """Poll `ready` (OSError or a timeout count as not ready) while the service runs, bounded."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        service.check_running()
        with suppress(OSError, subprocess.TimeoutExpired):
            if ready():
                return
        time.sleep(READY_POLL_S)
    raise BenchError(
        f"{service.name}: {what} not ready within {READY_TIMEOUT_S} s; its log:\n"
        f"{log_tail(service.log)}"
    )


def wait_for_dicom(service: Service, ae_title: str, port: int) -> None:
    def echo() -> bool:
        command = [ECHOSCU, "-aet", CALLING_AET, "-aec", ae_title, HOST, str(port)]
        return subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT_S).returncode == 0

    wait_until_ready(service, echo, f"C-ECHO to {ae_title} on port {port}")


# --- the receivers -------------------------------------------------------------------------


@contextmanager
def database_for_run(url: str | None) -> Iterator[str | None]:
    """A URL whose connections work in a fresh schema, dropped afterwards (as bench/jobs.py)."""
    if url is None:
        yield None
        return
    import psycopg

    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def prearchive_instances(root: Path, env: dict[str, str]) -> int:
    listed = run_cli([NEURODEPOT_CLI, "--root", str(root), "prearchive", "list", "--json"], env)
    try:
        return sum(int(study["instance_count"]) for study in json.loads(listed))
    except (ValueError, KeyError, TypeError) as error:
        raise BenchError(f"unexpected `prearchive list --json` output: {listed[:500]}") from error


@contextmanager
def neurodepot_receiver(scratch: Path, config: BenchConfig, nodelay: bool) -> Iterator[Receiver]:
    root, port, ae_title = scratch / "depot", free_port(), "NEURODEPOT"
    with database_for_run(config.database_url) as url:
        env = {k: v for k, v in dcmtk_env(nodelay).items() if not k.startswith("NEURODEPOT_")}
        env |= {"NEURODEPOT_DATABASE_URL": url} if url else {}
        run_cli([NEURODEPOT_CLI, "init", str(root)], env)
        run_cli([NEURODEPOT_CLI, "--root", str(root), "project", "create", PROJECT], env)
        serve_env = env | {
            "NEURODEPOT_DICOM_PORT": str(port),
            "NEURODEPOT_DICOM_AE_TITLE": ae_title,
            "NEURODEPOT_PREARCHIVE_QUIET_SECONDS": "3600",
            "NEURODEPOT_DASK_WORKERS": "1",
        }
        command = [NEURODEPOT_CLI, "--root", str(root), "serve", "--port", str(free_port())]
        with running(NEURODEPOT, command, scratch / "neurodepot.log", serve_env) as service:
            wait_for_dicom(service, ae_title, port)

            def count() -> int:
                service.check_running()
                return prearchive_instances(root, env)

            yield Receiver(NEURODEPOT, ae_title, port, count)


@contextmanager
def storescp_receiver(scratch: Path, config: BenchConfig, nodelay: bool) -> Iterator[Receiver]:
    output, port, ae_title = scratch / "storescp-out", free_port(), "STORESCP"
    output.mkdir()
    command = [STORESCP, "--fork", "--output-directory", str(output), "-aet", ae_title, str(port)]
    log = scratch / "storescp.log"
    with running(STORESCP_NAME, command, log, dcmtk_env(nodelay)) as service:
        wait_for_dicom(service, ae_title, port)

        def count() -> int:
            service.check_running()
            return sum(1 for path in output.rglob("*") if path.is_file())

        yield Receiver(STORESCP_NAME, ae_title, port, count)


def http_json(url: str) -> object:
    # No proxy: one from the environment would not reach this namespace's loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=PROBE_TIMEOUT_S) as response:
        return json.load(response)


@contextmanager
def orthanc_receiver(scratch: Path, config: BenchConfig, nodelay: bool) -> Iterator[Receiver]:
    dicom_port, http_port, ae_title = free_port(), free_port(), "ORTHANC"
    settings: dict[str, object] = {"Name": "bench", "Plugins": []}
    for kind in ("Storage", "Index", "Temporary"):
        (scratch / f"orthanc-{kind.lower()}").mkdir()
        settings[f"{kind}Directory"] = str(scratch / f"orthanc-{kind.lower()}")
    settings |= {
        "DicomAet": ae_title,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SyncStorageArea": True,
    }
    (scratch / "orthanc.json").write_text(json.dumps(settings, indent=2))
    command = [ORTHANC, str(scratch / "orthanc.json")]
    base = f"http://{HOST}:{http_port}"
    log = scratch / "orthanc.log"
    with running(ORTHANC_NAME, command, log, dcmtk_env(nodelay)) as service:
        wait_until_ready(service, lambda: bool(http_json(f"{base}/system")), "REST /system")
        wait_for_dicom(service, ae_title, dicom_port)

        def count() -> int:
            service.check_running()
            answer = http_json(f"{base}/statistics")
            if not isinstance(answer, dict) or "CountInstances" not in answer:
                raise BenchError(f"Orthanc /statistics answered {answer!r}")
            return int(answer["CountInstances"])

        yield Receiver(ORTHANC_NAME, ae_title, dicom_port, count)


RECEIVER_FACTORIES: dict[str, Callable[..., AbstractContextManager[Receiver]]] = {
    NEURODEPOT: neurodepot_receiver,
    STORESCP_NAME: storescp_receiver,
    ORTHANC_NAME: orthanc_receiver,
}


# --- sending and measuring -----------------------------------------------------------------


def send(sending: SendSet, receiver: Receiver, logs: Path) -> float:
    """Seconds from launching storescu (one per folder, concurrently) until the last exits 0."""
    timeout_s = SEND_TIMEOUT_BASE_S + SEND_TIMEOUT_PER_INSTANCE_S * sending.count
    what = f"storescu to {receiver.name} ({sending.label})"
    log_paths = [logs / f"storescu-{index + 1}.log" for index in range(len(sending.folders))]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        start = time.perf_counter()
        for folder, log in zip(sending.folders, log_paths, strict=True):
            command = [STORESCU, "-aet", CALLING_AET, "-aec", receiver.ae_title, "+sd", "+r"]
            command += [HOST, str(receiver.port), str(folder)]
            with log.open("wb") as out:
                env = dcmtk_env(sending.nodelay)
                processes.append(subprocess.Popen(command, stdout=out, stderr=out, env=env))
        for process in processes:
            process.wait(max(0.0, start + timeout_s - time.perf_counter()))
        seconds = time.perf_counter() - start
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{what} still running after {timeout_s:.0f} s") from error
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(KILL_TIMEOUT_S)
    for process, log in zip(processes, log_paths, strict=True):
        if process.returncode != 0:
            raise BenchError(f"{what} exited {process.returncode}:\n{log_tail(log)}")
    return seconds


def measure(receiver_name: str, sending: SendSet, scratch: Path, config: BenchConfig) -> float:
    """One timed send into a freshly started receiver with empty storage, checked afterwards."""
    scratch.mkdir()
    with RECEIVER_FACTORIES[receiver_name](scratch, config, sending.nodelay) as receiver:
        seconds = send(sending, receiver, scratch)
        received = receiver.count()
    if received != sending.count:
        what = f"after storescu sent {sending.count} ({sending.label}) and exited 0"
        raise BenchError(f"{receiver_name} holds {received} instance(s) {what}")
    return seconds


def run_measurements(root: Path, send_sets: Sequence[SendSet], config: BenchConfig) -> Results:
    """Every (sender, receiver) pair `config.repeat` times, receivers interleaved."""
    results: Results = {}
    for run in range(config.repeat):
        for sending in send_sets:
            for name in config.receivers:
                scratch = root / f"run-{run + 1}-{sending.sender}-{name.lower()}"
                seconds = measure(name, sending, scratch, config)
                results.setdefault((name, sending.sender), []).append(seconds)
                print(
                    f"  run {run + 1}/{config.repeat}  {name:<10} {sending.label:<26} "
                    f"{sending.count:5d} instances in {seconds:7.2f} s",
                    flush=True,
                )
                shutil.rmtree(scratch)
    return results


# --- printing ------------------------------------------------------------------------------


def print_header(config: BenchConfig, send_sets: Sequence[SendSet]) -> None:
    database = "PostgreSQL, private schema" if config.database_url else "SQLite"
    described = {
        NEURODEPOT: f"neurodepot serve ({database})",
        STORESCP_NAME: "storescp --fork (files, no fsync)",
        ORTHANC_NAME: "Orthanc (SQLite index, fsync per file)",
    }
    largest = max(send_sets, key=lambda sending: sending.count)
    print(
        f"corpus {largest.count} instances, {largest.total_bytes / 1e6:.1f} MB; sender dcmtk "
        f"storescu; receivers: {'; '.join(described[name] for name in config.receivers)}"
    )
    if "stock" in config.senders:
        print(
            f"  stock storescu sends only the first {config.stock_count}: without TCP_NODELAY "
            "dcmtk stalls ~40 ms per PDU on delayed ACKs (PEERS.md)"
        )
    print("  TCP_NODELAY=1 columns: set for storescu and for storescp and Orthanc (dcmtk reads it)")
    print(
        f"all on {HOST} in a private network namespace; {config.repeat} run(s) per measurement, "
        f"interleaved, each into a freshly started receiver; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def print_table(results: Results, send_sets: Sequence[SendSet], config: BenchConfig) -> None:
    print(f"\nmedian of {config.repeat} run(s), from launching storescu until it exits:")
    print(
        f"  {'receiver':<10} {'sender':<26} {'instances':>9} {'seconds':>8} {'inst/s':>8} "
        f"{'MB/s':>7}  runs (s)"
    )
    for sending in send_sets:
        for name in config.receivers:
            runs = results[name, sending.sender]
            median = statistics.median(runs)
            print(
                f"  {name:<10} {sending.label:<26} {sending.count:9d} {median:8.2f} "
                f"{sending.count / median:8.1f} {sending.total_bytes / 1e6 / median:7.2f}  "
                + ", ".join(f"{seconds:.2f}" for seconds in runs)
            )


def print_ratios(results: Results, send_sets: Sequence[SendSet], config: BenchConfig) -> None:
    peers = [peer for peer in GOALS if peer in config.receivers]
    if NEURODEPOT not in config.receivers or not peers:
        print("\nno ratios: neurodepot and at least one peer must both be measured")
        return
    print(
        "\nratios neurodepot / peer, instances/s (> 1: neurodepot faster); goal of issue 5: "
        f">= {GOALS[STORESCP_NAME]} x storescp and faster than Orthanc"
    )
    for sending in send_sets:
        parts = []
        for peer in peers:
            ours = statistics.median(results[NEURODEPOT, sending.sender])
            ratio = statistics.median(results[peer, sending.sender]) / ours
            met = ratio > GOALS[peer] if peer == ORTHANC_NAME else ratio >= GOALS[peer]
            verdict = "(goal met)" if met else "(goal NOT met)"
            parts.append(f"/ {peer:<8} {ratio:6.2f} {verdict:<14}")
        print(f"  {sending.label:<26} {'  '.join(parts)}".rstrip())


def main(argv: Sequence[str]) -> None:
    config, in_netns = parse_args(argv)
    if not in_netns:
        reexec_in_private_netns(argv)
    try:
        check_private_netns()
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            print(f"building the corpus in {tmp} ...", flush=True)
            send_sets = build_send_sets(Path(tmp), config)
            print_header(config, send_sets)
            results = run_measurements(Path(tmp), send_sets, config)
    except BenchError as error:
        sys.exit(f"bench/ingest.py FAILED: {error}")
    print_table(results, send_sets, config)
    print_ratios(results, send_sets, config)


if __name__ == "__main__":
    main(sys.argv[1:])
