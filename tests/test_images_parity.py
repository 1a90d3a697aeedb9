"""``images`` and ``rmi`` as podman's 010-images tests use them (issue 17): the ``after`` filter, template
pipelines, ``rmi --force`` of a missing image."""

from __future__ import annotations

import pytest

from kernelext.cli.template import Template, TemplateError

from conftest import Store, needs_root


def test_template_pipelines_are_function_calls() -> None:
    assert Template.parse("{{.ID| upper}}", "images").render({"ID": "abc1"}) == "ABC1"
    assert Template.parse("{{ .ID | lower }}-{{upper .ID}}", "images").render({"ID": "Ab"}) == "ab-AB"
    assert Template.parse('{{"a|b"}}', "images").render({}) == "a|b"  # a literal's bar is no pipe
    with pytest.raises(TemplateError, match='function "nosuch" not defined'):
        Template.parse("{{.ID | nosuch}}", "images")


@needs_root
def test_after_filter_and_rmi_force_of_a_missing_image(store: Store) -> None:
    rt = store.runtime
    base = rt.image("busybox").id
    opts = ["--noheading", "--no-trunc", "--format", "{{.ID}}--{{.Repository}}:{{.Tag}}"]
    assert store.cli("images", "--noheading", f"--filter=after={base}").stdout == ""
    assert store.cli("run", "--name", "tiny", "busybox", "true").returncode == 0
    new = rt.commit("tiny", "mynewimage").id
    for key in ("after", "since"):
        shown = store.cli("images", *opts, f"--filter={key}={base}")
        assert shown.stdout == f"sha256:{new}--localhost/mynewimage:latest\n", shown.stderr
    assert store.cli("images", *opts, "--filter=before=mynewimage").stdout == \
        f"sha256:{base}--localhost/busybox:latest\n"

    missing = store.cli("image", "rm", "bogus")
    assert (missing.returncode, missing.stderr) == (1, "Error: bogus: image not known\n")
    forced = store.cli("image", "rm", "--force", "bogus")
    assert (forced.returncode, forced.stdout, forced.stderr) == (0, "", "")
    assert store.cli("tag", "busybox", "foo").returncode == 0
    both = store.cli("image", "rm", "--force", "bogus", "foo")
    assert (both.returncode, both.stdout) == (0, "Untagged: localhost/foo:latest\n")  # only a name: "tiny" stays
    assert store.cli("rm", "tiny").returncode == 0
