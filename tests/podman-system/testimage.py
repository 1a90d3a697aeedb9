"""Build a stand-in for podman's test image (``quay.io/libpod/testimage``) as an oci-archive.

podman's image is alpine with busybox-extras plus ``/home/podman/testimage-id`` and ``/home/podman/pause``,
``WORKDIR /home/podman`` and a ``CMD`` that echoes a line (podman's ``test/system/build-testimage``). This one
is the host's static busybox (which has ``httpd``, ``nc`` and the rest of busybox-extras; ``printenv``, which
Debian's lacks, is a script) with the same files, workdir, command and labels, so the tests that look at
them see what they expect.

    python testimage.py OUTPUT.tar REFERENCE [TAG]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kernelext.storage.busybox import find_static_busybox
from kernelext.storage.ocilayout import write_flat_layout

#: podman's build-testimage stamps testimage-id with this mtime.
TESTIMAGE_ID_MTIME = 1_600_000_000
PAUSE = """#!/bin/sh
echo Confirmed: testimage pause invoked as $0
while :; do
    sleep 0.1
done
"""
#: Alpine's busybox has printenv (in /bin, where busybox installs it), Debian's static one does not: the same
#: behaviour as a script. With no names it prints the environment it was started with (/proc/$$/environ), not
#: the shell's own, which adds SHLVL, PWD and a default PATH.
PRINTENV = r"""#!/bin/sh
[ $# -eq 0 ] && { tr '\0' '\n' < /proc/$$/environ; exit; }
status=0
for name; do
    if eval "[ -n \"\${$name+set}\" ]"; then eval "printf '%s\\n' \"\$$name\""; else status=1; fi
done
exit $status
"""
#: Alpine keeps os-release in /usr/lib and links it from /etc (podman's tests copy onto /etc/os-release).
OS_RELEASE = 'NAME="kernelext testimage"\nID=busybox\nPRETTY_NAME="busybox stand-in for podman\'s testimage"\n'
SERVICES = "ssh\t\t22/tcp\nhttp\t\t80/tcp\n"
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"
CMD = ["/bin/echo", "This container is intended for podman CI testing"]


def build_rootfs(root: Path, tag: str) -> None:
    busybox = find_static_busybox()
    for d in ("bin", "dev", "etc", "home/podman", "proc", "root", "sys", "tmp", "usr/bin", "usr/sbin",
              "var/tmp", "run", "srv", "sbin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "var/tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    shutil.copy2(busybox, root / "bin/busybox")
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        link = root / applet
        if not applet.endswith("/busybox") and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(root / "bin/busybox", link.parent), link)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "etc/services").write_text(SERVICES)  # alpine has it; podman's 140-diff removes it
    for name in ("hostname", "hosts", "resolv.conf"):
        (root / "etc" / name).write_text("")
    (root / "usr/lib").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/os-release").write_text(OS_RELEASE)
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    ident = root / "home/podman/testimage-id"
    ident.write_text(tag + "\n")
    os.utime(ident, (TESTIMAGE_ID_MTIME, TESTIMAGE_ID_MTIME))
    printenv = root / "bin/printenv"
    printenv.write_text(PRINTENV)
    printenv.chmod(0o755)
    pause = root / "home/podman/pause"
    pause.write_text(PAUSE)
    pause.chmod(0o755)


def main(output: str, reference: str, tag: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rootfs, layout = Path(tmp, "rootfs"), Path(tmp, "layout")
        build_rootfs(rootfs, tag)
        rootfs.chmod(0o555)  # as in podman's image (filesystem RPM's mode), which 030-run checks
        config = {"Cmd": CMD, "WorkingDir": "/home/podman", "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                  "Labels": {"created_by": "test/system/build-testimage", "created_at": "2022-06-15T00:00:00Z"}}
        try:
            write_flat_layout(rootfs, config, layout, ["tar"])
        finally:
            rootfs.chmod(0o755)  # removable again
        Path(output).unlink(missing_ok=True)
        subprocess.run(["skopeo", "copy", "--quiet", f"oci:{layout}", f"oci-archive:{output}:{reference}"],
                       check=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "20220615")
