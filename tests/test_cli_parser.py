"""The argument grammar shared by the CLI and the magics: pure parsing."""

from __future__ import annotations

import pytest

from kernelext.cli.format import human_duration, parse_interval, parse_time, table
from kernelext.cli.parser import HelpRequested, UsageError, command_names, command_parser, parse_args
from kernelext.cli.template import render_template


def test_run_stops_option_parsing_at_the_image() -> None:
    args = parse_args(["--root", "/r", "run", "-d", "--rm", "-e", "A=1", "--name", "w", "busybox",
                       "sh", "-c", "echo -d --rm"])
    assert (args.cmd, args.detach, args.rm, args.env, args.name) == ("run", True, True, ["A=1"], "w")
    assert args.image == "busybox" and args.command == ["sh", "-c", "echo -d --rm"]
    assert args.root == "/r" and args.runroot is None


def test_container_and_image_groups_and_aliases() -> None:
    assert parse_args(["container", "cleanup", "--stopped-only", "--rm", "x"]).cmd == "cleanup"
    assert parse_args(["container", "ls", "-a"]).cmd == "ps"
    assert parse_args(["image", "ls"]).cmd == "image-ls"
    assert parse_args(["images", "-q"]).cmd == "image-ls"
    assert parse_args(["rm", "-f", "a", "b"]).containers == ["a", "b"]


def test_exec_keeps_the_command_flags() -> None:
    args = parse_args(["exec", "-it", "-u", "nobody", "web", "ls", "-la"])
    assert (args.interactive, args.tty, args.user, args.container, args.command) == (True, True, "nobody", "web",
                                                                                  ["ls", "-la"])


@pytest.mark.parametrize("argv, message", [
    ([], "missing command"),
    (["bogus"], "unrecognized command"),
    (["container"], "missing command"),
    (["stop", "-t", "soon", "x"], "invalid int value"),
    (["run"], "required"),
    (["run", "--bogus=a value with spaces", "busybox"], "unknown flag: --bogus"),
    (["ps", "--bogus"], "unknown flag: --bogus"),
])
def test_bad_arguments_raise_usage_errors_without_exiting(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(argv)


def test_help_is_returned_not_printed() -> None:
    with pytest.raises(HelpRequested) as shown:
        parse_args(["run", "--help"])
    assert "--detach" in shown.value.text and "kernelext run" in shown.value.text
    with pytest.raises(HelpRequested) as top:
        parse_args(["--help"])
    assert "Available Commands" in top.value.text and "checkpoint" not in top.value.text.split("run")[0][:0]


def test_completion_lists() -> None:
    names = command_names()
    assert {"run", "ps", "ls", "container", "image", "info"} <= set(names)
    assert command_names("image") == ["exists", "history", "import", "inspect", "list", "load", "ls", "prune",
                                      "pull", "push", "remove", "rm", "save", "tag", "tree", "untag"]
    assert "--detach" in command_parser("run").format_help()


def test_templates_tables_and_durations() -> None:
    doc = {"Name": "web", "State": {"Status": "running", "Running": True}, "Config": {"Cmd": ["sh"]}}
    assert render_template("{{.Name}}\\t{{.State.Status}} {{.State.Running}} {{json .Config.Cmd}}", doc) == \
        'web\trunning true ["sh"]'
    assert render_template("{{upper .Name}}", doc) == "WEB"
    assert render_template("{{.ID}} {{.Id}}", {"Id": "abc"}) == "abc abc"  # podman: Go's field or JSON's name
    with pytest.raises(UsageError, match="can't evaluate field Nope"):
        render_template("{{.Nope}}", doc)
    assert render_template('{{- .Name -}} \n {{"}}\\n"}}{{lower .State.Status}}\\t', doc) == "web}}\nrunning\t"
    assert table(["A", "BB"], [["x", "y"], ["long", "z"]]) == "A     BB\nx     y\nlong  z"
    assert [human_duration(s) for s in (0.2, 1, 5, 61, 3000, 4000, 200000)] == [
        "Less than a second", "1 second", "5 seconds", "About a minute", "50 minutes", "About an hour", "2 days"]
    assert parse_interval("250ms") == 0.25 and parse_interval("2m") == 120
    assert parse_time("1700000000") == 1700000000.0
    assert parse_time("2026-11-29T14:22:13.704439076+00:00") == pytest.approx(1795962133.704439)
    with pytest.raises(UsageError):
        parse_interval("soon")


def test_podman_flag_spellings() -> None:
    args = parse_args(["--noout", "stop", "--timeout", "3", "--ignore", "web"])
    assert args.noout and args.time == 3 and args.ignore and args.containers == ["web"]
    assert parse_args(["stop", "-t", "0", "web"]).time == 0 and parse_args(["stop", "web"]).time is None
    rm = parse_args(["rm", "-t", "2", "-f", "--filter", "name=w", "web"])
    assert rm.time == 2 and rm.filter == ["name=w"] and rm.force
    ps = parse_args(["ps", "-a", "--filter", "status=exited", "-f", "exited=0", "--sort", "names", "--noheading"])
    assert ps.filter == ["status=exited", "exited=0"] and ps.sort == "names" and ps.noheading
    start = parse_args(["start", "--all", "--filter", "restart-policy=none"])
    assert start.all and not start.attach and start.filter == ["restart-policy=none"]
    assert parse_args(["kill", "-a"]).all and parse_args(["unpause", "--all"]).all
    assert parse_args(["container", "exists", "web"]).cmd == "exists"
    assert parse_args(["diff", "-l"]).latest and parse_args(["logs", "a", "b"]).containers == ["a", "b"]
    run = parse_args(["run", "busybox", "sh", "-c", "echo a b", "--x y"])  # the command keeps its own flags
    assert run.image == "busybox" and run.command == ["sh", "-c", "echo a b", "--x y"]
    assert parse_args(["save", "--quiet", "img", "-o", "/tmp/a.tar"]).quiet  # podman's test calls it so


@pytest.mark.parametrize("value", ["-1", "-INT", "FPE", "-SIGUSR1", "9"])
def test_kill_signal_may_start_with_a_dash(value: str) -> None:
    for flag in ("-s", "--signal"):
        args = parse_args(["kill", flag, value, "web"])
        assert args.signal == value and args.containers == ["web"]
