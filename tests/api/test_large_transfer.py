"""A 1 GiB file up to and back from a live server, in flat memory.

The server is the real `neurodepot serve` in its own process, so its peak resident memory
(`VmHWM`) can be read. A 64 MiB transfer first sets the baseline: streaming means the peak after
1 GiB is about the same.
"""

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.live_server import serving

MIB = 1 << 20
CHUNK = MIB
SMALL = 64 * MIB
LARGE = 1 << 30
PEAK_LIMIT = 200 * MIB
GROWTH_LIMIT = 50 * MIB
TIMEOUT = httpx.Timeout(120.0)

pytestmark = pytest.mark.slow


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (`VmHWM`), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@pytest.fixture
def server(
    cli_path: str,
    initialised_depot: Path,
    depot_env: dict[str, str],
    port: int,
    tmp_path: Path,
) -> Iterator[tuple[str, int]]:
    """`neurodepot serve` on 127.0.0.1: its base URL and process ID (stopped afterwards)."""
    with serving(cli_path, initialised_depot, depot_env, port, tmp_path / "server.log") as live:
        yield live


def sparse_file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in read_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def zeros_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(size // CHUNK):
        digest.update(bytes(CHUNK))
    return digest.hexdigest()


def round_trip(client: httpx.Client, url: str, source: Path, target: Path) -> dict[str, float]:
    """Upload `source` as a streamed body, download it to `target`; return seconds taken.

    The upload declares the source's SHA-256, which the server checks; the download is hashed
    as it is written, and must match it.
    """
    size = source.stat().st_size
    expected = sha256_of(source)
    assert expected == zeros_sha256(size)  # what a sparse file reads as
    started = time.monotonic()
    stored = client.put(
        url,
        content=read_chunks(source),
        headers={"Content-Length": str(size), "X-Content-SHA256": expected},
    )
    uploaded = time.monotonic()
    assert stored.status_code == 201, stored.text
    assert (stored.json()["file"]["digest"], stored.json()["file"]["size"]) == (expected, size)

    received = hashlib.sha256()
    with client.stream("GET", url) as response, target.open("wb") as out:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        assert response.headers["etag"] == f'"{expected}"'
        for chunk in response.iter_raw(CHUNK):
            received.update(chunk)
            out.write(chunk)
    downloaded = time.monotonic()
    assert target.stat().st_size == size
    assert received.hexdigest() == expected
    return {"upload": uploaded - started, "download": downloaded - uploaded}


def test_one_gibibyte_round_trip_keeps_server_memory_flat(server: tuple[str, int], tmp_path: Path):
    url, pid = server
    sizes = {"64 MiB": SMALL, "1 GiB": LARGE}
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert client.post("/api/v1/projects", json={"label": "big"}).status_code == 201
        base = "/api/v1/projects/big/resources/raw/files"
        peaks = {"start": peak_rss(pid)}
        figures = {}
        for name, size in sizes.items():
            source = sparse_file(tmp_path / f"{size}.bin", size)
            target = tmp_path / f"{size}.back"
            figures[name] = round_trip(client, f"{base}/{size}.bin", source, target)
            peaks[name] = peak_rss(pid)
            target.unlink()
            assert client.delete(f"{base}/{size}.bin").status_code == 200

    for name, seconds in figures.items():
        mib = sizes[name] / MIB
        print(
            f"\n{name}: upload {seconds['upload']:.1f} s ({mib / seconds['upload']:.0f} MiB/s), "
            f"download {seconds['download']:.1f} s ({mib / seconds['download']:.0f} MiB/s)"
        )
    shown = ", ".join(f"{name} {peak / MIB:.1f} MiB" for name, peak in peaks.items())
    print(f"server peak RSS (VmHWM): {shown}")
    assert peaks["1 GiB"] < PEAK_LIMIT
    assert peaks["1 GiB"] - peaks["64 MiB"] < GROWTH_LIMIT
