"""Pure state-machine rules: no runtime needed."""

from __future__ import annotations

import pytest

from kernelext.core.state import (
    ALLOWED_FROM,
    ContainerConfig,
    ContainerRuntimeState,
    ContainerStatus,
    NetworkMode,
    RestartPolicy,
    RestartPolicyName,
    should_restart,
)
from kernelext.errors import InvalidArgumentError

S = ContainerStatus


def test_status_values_are_podmans_user_visible_names() -> None:
    assert S.CONFIGURED.value == "created" and S.CREATED.value == "initialized"
    assert {s.value for s in S} == {"unknown", "created", "initialized", "running", "stopped", "paused", "exited",
                                    "removing", "stopping"}
    assert S.parse("initialized") is S.CREATED and S.parse("configured") is S.CONFIGURED
    with pytest.raises(InvalidArgumentError):
        S.parse("sleeping")


@pytest.mark.parametrize("operation, allowed", [
    ("start", {S.CONFIGURED, S.CREATED, S.STOPPED, S.EXITED}),
    ("stop", {S.CREATED, S.RUNNING, S.STOPPING}),
    ("kill", {S.RUNNING, S.STOPPING, S.PAUSED}),
    ("pause", {S.RUNNING}),
    ("unpause", {S.PAUSED}),
    ("restart", {S.CONFIGURED, S.CREATED, S.RUNNING, S.STOPPED, S.EXITED}),
    ("cleanup", {S.CONFIGURED, S.CREATED, S.STOPPED, S.STOPPING, S.EXITED}),
    ("checkpoint", {S.RUNNING}),
    ("restore", {S.CONFIGURED, S.EXITED}),
    ("mount", set(S) - {S.REMOVING}),
])
def test_allowed_states_match_design(operation: str, allowed: set[ContainerStatus]) -> None:
    assert ALLOWED_FROM[operation] == allowed


@pytest.mark.parametrize("text, name, retries", [
    ("", RestartPolicyName.NO, 0), ("no", RestartPolicyName.NO, 0), ("always", RestartPolicyName.ALWAYS, 0),
    ("on-failure", RestartPolicyName.ON_FAILURE, 0), ("on-failure:5", RestartPolicyName.ON_FAILURE, 5),
    ("unless-stopped", RestartPolicyName.UNLESS_STOPPED, 0),
])
def test_restart_policy_parse(text: str, name: RestartPolicyName, retries: int) -> None:
    policy = RestartPolicy.parse(text)
    assert (policy.name, policy.max_retries) == (name, retries)
    assert RestartPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_restart_policy_rejects(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        RestartPolicy.parse(text)


def _config(policy: str) -> ContainerConfig:
    return ContainerConfig(id="a" * 64, name="t", image_id="i", image_name="busybox", command=["true"],
                           restart_policy=RestartPolicy.parse(policy))


@pytest.mark.parametrize("policy, exit_code, count, by_user, match, expected", [
    ("no", 1, 0, False, True, False),
    ("always", 0, 0, False, True, True),
    ("always", 0, 0, True, True, False),          # never after a user stop or kill
    ("always", 0, 0, False, False, False),        # only after an exit the runtime observed
    ("unless-stopped", 3, 7, False, True, True),
    ("on-failure", 0, 0, False, True, False),      # success is not a failure
    ("on-failure", 1, 9, False, True, True),       # no retry limit
    ("on-failure:2", 1, 1, False, True, True),
    ("on-failure:2", 1, 2, False, True, False),    # limit reached
])
def test_should_restart(policy: str, exit_code: int, count: int, by_user: bool, match: bool, expected: bool) -> None:
    state = ContainerRuntimeState(exit_code=exit_code, restart_count=count, stopped_by_user=by_user,
                                  restart_policy_match=match)
    assert should_restart(_config(policy), state) is expected


def test_config_and_state_round_trip_through_json() -> None:
    config = _config("on-failure:3")
    config.network = NetworkMode.HOST
    config.labels = {"a": "b"}
    assert ContainerConfig.from_json(config.to_json()) == config
    state = ContainerRuntimeState(status=S.PAUSED, pid=12, exit_code=137, user_mounts=2)
    assert ContainerRuntimeState.from_json(state.to_json()) == state
    assert state.mounted and not ContainerRuntimeState().mounted
