"""``checkpoint --create-image`` and ``restore IMAGE`` (podman 4's checkpoint images), on real CRIU."""

from __future__ import annotations

from kernelext import Container
from kernelext import ContainerStatus as S
from kernelext.core.checkpointimage import LABEL_NAME, LABEL_ROOTFS_IMAGE_ID, is_checkpoint_image
from kernelext.core.checkpointinfo import read_checkpoint

from conftest import Store, wait_until

COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"


def numbers(ctr: Container) -> list[int]:
    return [int(line.data) for line in ctr.logs() if line.data.strip().isdigit()]


def test_checkpoint_image_round_trip(store: Store) -> None:
    rt = store.runtime
    ctr = rt.run("busybox", ["sh", "-c", COUNTER], name="counter")
    assert wait_until(lambda: len(numbers(ctr)) >= 5)
    done = store.cli("checkpoint", "--create-image", "counter-ckpt", "counter")
    assert done.returncode == 0 and done.stdout == "counter\n", done.stderr
    ctr = rt.get("counter")  # checkpointed by another process: read again
    assert ctr.status is S.EXITED
    last = numbers(ctr)[-1]
    image = rt.images.get("counter-ckpt")
    assert is_checkpoint_image(image) and not is_checkpoint_image(rt.images.get("busybox"))
    assert image.config.labels[LABEL_NAME] == "counter" and image.config.labels[LABEL_ROOTFS_IMAGE_ID] == ctr.config.image_id
    # The image's layer is the checkpoint in podman's layout: the counter's shell is inside.
    info = read_checkpoint(image.lowers[0])
    assert info.container_name == "counter" and info.tree[0].args == ["sh", "-c", COUNTER]
    # A new container from it counts on from where the original stopped; the original stays as it was.
    done = store.cli("restore", "-n", "copy", "counter-ckpt")
    assert done.returncode == 0, done.stderr
    copy = rt.get("copy")
    assert copy.status is S.RUNNING and copy.id != ctr.id
    assert wait_until(lambda: len(numbers(copy)) > last + 2)
    assert numbers(copy)[last + 1:last + 3] == [last + 1, last + 2]
    assert rt.get("counter").status is S.EXITED
    # --name names an image or --import, never a container; an ordinary image is no container either.
    refused = store.cli("restore", "-n", "x", "counter")
    assert refused.returncode == 125 and "--name can only be used with image or --import" in refused.stderr
    assert store.cli("restore", "busybox").returncode == 125
    # run -d of a checkpoint image restores it too (podman's run of a checkpoint image).
    done = store.cli("run", "-d", "--name", "again", "counter-ckpt")
    assert done.returncode == 0, done.stderr
    again = rt.get("again")
    assert again.status is S.RUNNING and done.stdout.strip() == again.id
    assert wait_until(lambda: len(numbers(again)) > last + 1) and numbers(again)[last + 1] == last + 1
    assert sorted(c.name for c in rt.list()) == ["again", "copy", "counter"]
