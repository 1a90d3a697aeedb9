"""Image speed and size: kernelext pull next to its floor, in one run, from a registry on loopback.

    sudo .venv/bin/python bench/bench_images.py [--runs N] [--mib N]

A registry (Debian's docker-registry) is started on a free 127.0.0.1 port with
two images pushed by skopeo: ``big``, three gzip layers of about --mib MiB in
all (a base of many files, a middle one, a top one), and ``sibling``, which
shares big's base and middle layers and adds a small top layer of its own.

* pull of ``big`` into an empty store against the floor: ``skopeo copy`` of the
  same image to a plain OCI directory, then ``tar x`` of each of its layers
  (transfer + unpack), rounds interleaved, medians and their ratio;
  ``podman pull`` too when podman is installed (into a private store of its
  own, overlay driver, removed at the end);
* pull of ``sibling`` into the store that has ``big``: only its new layer is
  fetched and unpacked (time, and the store's growth on disk);
* ``run`` of the pulled image against ``run`` of the built-in busybox
  (``true``, create to removal): a layered image costs no copy or re-reading
  of layers per start.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kernelext import Runtime
from kernelext.files.fdtree import tree_size

REGISTRY = "/usr/bin/docker-registry"
FILE_BYTES = 100_000
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _layer(prefix: str, mib: float, seed: int, *, runnable: bool = False) -> bytes:
    """A tar of ``mib`` MiB of files, half random (incompressible), half text-like (compressible);
    ``runnable``: with the host's static busybox as /bin/true."""
    buf = io.BytesIO()
    rng = hashlib.sha256(str(seed).encode())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if runnable:
            _add_busybox(tar)
        count = max(1, int(mib * (1 << 20) / FILE_BYTES))
        for i in range(count):
            data = os.urandom(FILE_BYTES // 2) + (rng.hexdigest() * (FILE_BYTES // 128)).encode()[:FILE_BYTES // 2]
            info = tarfile.TarInfo(f"{prefix}/d{i % 20:02d}/f{i:05d}")
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _add_busybox(tar: tarfile.TarFile) -> None:
    from kernelext.storage.busybox import find_static_busybox

    data = find_static_busybox().read_bytes()
    info = tarfile.TarInfo("bin/busybox")
    info.size, info.mode, info.mtime = len(data), 0o755, 1_700_000_000
    tar.addfile(info, io.BytesIO(data))
    link = tarfile.TarInfo("bin/true")
    link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "busybox", 1_700_000_000
    tar.addfile(link)


def write_layout(layout: Path, images: dict[str, list[bytes]]) -> None:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    compressed: dict[bytes, bytes] = {}
    manifests = []
    for tag, layers in images.items():
        descriptors, diff_ids = [], []
        for raw in layers:
            if raw not in compressed:
                compressed[raw] = gzip.compress(raw, compresslevel=6, mtime=0)
            descriptors.append({"mediaType": MEDIA_LAYER_GZIP, **blob(compressed[raw])})
            diff_ids.append(f"sha256:{hashlib.sha256(raw).hexdigest()}")
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                               "config": {"mediaType": MEDIA_CONFIG, **blob(config)}, "layers": descriptors}).encode()
        manifests.append({"mediaType": MEDIA_MANIFEST, **blob(manifest),
                          "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


def start_registry(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = base / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                      f"{base / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("docker-registry did not start") from None
            time.sleep(0.05)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor_pull(ref: str, work: Path) -> None:
    """skopeo copy to an OCI directory, then tar x of every layer (what a pull must at least do)."""
    layout = work / "oci"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}"],
                   check=True)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    for i, layer in enumerate(manifest["layers"]):
        dest = work / f"layer{i}"
        dest.mkdir()
        subprocess.run(["tar", "-xzf", str(layout / "blobs/sha256" / layer["digest"].split(":")[1]), "-C",
                        str(dest)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=float, default=100.0)
    args = parser.parse_args()
    if not Path(REGISTRY).exists() or not shutil.which("skopeo"):
        print("needs docker-registry and skopeo (scripts/setup.sh installs them)")
        return 1
    base = Path(tempfile.mkdtemp(prefix="kernelext-bench-images-", dir="/var/tmp"))
    cleanup = [base]
    registry = None
    try:
        bottom, middle = _layer("base", args.mib * 0.5, 1, runnable=True), _layer("mid", args.mib * 0.3, 2)
        top, sibling_top = _layer("top", args.mib * 0.2, 3), _layer("sib", args.mib * 0.05, 4)
        write_layout(base / "layout", {"big": [bottom, middle, top], "sibling": [bottom, middle, sibling_top]})
        registry, host = start_registry(base)
        for tag in ("big", "sibling"):
            subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{base / 'layout'}:{tag}",
                            f"docker://{host}/{tag}:latest"], check=True)
        big, sibling = f"{host}/big", f"{host}/sibling"
        pushed_mb = sum(p.stat().st_size for p in (base / "layout/blobs/sha256").iterdir()) / 1e6
        print(f"images: big = 3 gzip layers, sibling shares 2 of them; {pushed_mb:.0f} MB of blobs pushed")

        times: dict[str, list[float]] = {"floor": [], "pull": [], "podman": [], "sibling": [], "run-busybox": [],
                                         "run-pulled": []}
        growth: list[tuple[int, int]] = []
        podman_argv = None
        if shutil.which("podman"):  # a private podman store (its own overlay driver), removed at the end
            podman_run = Path(tempfile.mkdtemp(prefix="kxb-podman-"))  # podman: a runroot of <= 50 characters
            cleanup.append(podman_run)
            podman_argv = ["podman", "--root", str(base / "podman-root"), "--runroot", str(podman_run)]
        for r in range(args.runs):
            work = base / f"floor{r}"
            work.mkdir()
            times["floor"].append(timed(lambda work=work: floor_pull(big, work)))
            store = base / f"store{r}"
            rt = Runtime(store / "root", store / "run")
            try:
                times["pull"].append(timed(lambda rt=rt: rt.pull(big, tls_verify=False)))
                before = tree_size(store / "root")
                times["sibling"].append(timed(lambda rt=rt: rt.pull(sibling, tls_verify=False)))
                growth.append((before, tree_size(store / "root") - before))
                rt.image("busybox")
                for image, key in (("busybox", "run-busybox"), (big, "run-pulled")):
                    def run_once(image: str = image, rt: Runtime = rt) -> None:
                        ctr = rt.run(image, ["true"])
                        ctr.wait()
                        ctr.remove()
                    run_once()  # warm
                    times[key].append(statistics.median(timed(run_once) for _ in range(3)))
            finally:
                rt.close()
            if podman_argv is not None:
                subprocess.run([*podman_argv, "rmi", "-a", "-f"], capture_output=True)
                times["podman"].append(timed(lambda: subprocess.run(
                    [*podman_argv, "pull", "-q", "--tls-verify=false", big], check=True, capture_output=True)))
        med = {k: statistics.median(v) for k, v in times.items() if v}
        print(f"pull of big:            kernelext {med['pull']:.2f} s, floor (skopeo copy + tar x) "
              f"{med['floor']:.2f} s: ratio {med['pull'] / med['floor']:.2f}")
        if "podman" in med:
            print(f"                        podman pull {med['podman']:.2f} s: kernelext/podman "
                  f"{med['pull'] / med['podman']:.2f}")
        else:
            print("                        podman: not installed here")
        before, grew = growth[-1]
        print(f"pull of sibling:        {med['sibling']:.2f} s ({med['sibling'] / med['pull']:.2f} of big's); "
              f"store grew {grew / 1e6:.1f} MB (big: {before / 1e6:.1f} MB; sibling's own layer: "
              f"{len(sibling_top) / 1e6:.1f} MB)")
        print(f"run true, create..rm:   pulled image {med['run-pulled'] * 1000:.0f} ms, busybox "
              f"{med['run-busybox'] * 1000:.0f} ms: ratio {med['run-pulled'] / med['run-busybox']:.2f}")
        print(f"({args.runs} rounds, medians)")
    finally:
        if registry is not None:
            registry.terminate()
            registry.wait()
        if len(cleanup) > 1:
            subprocess.run(["podman", "--root", str(base / "podman-root"), "--runroot", str(cleanup[1]), "rmi", "-a",
                            "-f"], capture_output=True)
            # containers/storage makes its overlay directory a private mount of its own: not left behind.
            for path in (base / "podman-root" / "overlay", base / "podman-root"):
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
