#!/bin/bash
# The cgroup-focused tests: as root, then as kernelext-test inside its systemd user manager (a scope of
# systemd-run --user, as a person's session gives), from the staged copy setup.sh prepares for that user.
. /job/job.sh.d/common.sh
cd "$SRC"
ROOT_TESTS=${JOB_ROOT_TESTS:-"tests/test_cgroups.py tests/test_resources.py::test_a_container_over_its_memory_limit_is_oom_killed
 tests/test_lifecycle.py::test_pause_freezes_and_unpause_resumes_output tests/test_lifecycle.py::test_stats_and_top_read_the_cgroup
 tests/test_lifecycle.py::test_info_reports_host_capabilities tests/test_lifecycle.py::test_inspect_document_has_podman_fields
 tests/test_checkpoint.py::test_counter_continues_over_two_cycles"}
USER_TESTS=${JOB_USER_TESTS:-"tests/test_cgroups.py tests/test_lifecycle.py::test_stats_and_top_read_the_cgroup
 tests/test_lifecycle.py::test_pause_freezes_and_unpause_resumes_output"}
sec "pytest as root"
run timeout "${JOB_PYTEST_TIMEOUT:-1500}" .venv/bin/python -m pytest -p no:cacheprovider -o addopts= -q -rs \
    --timeout 600 --durations=10 $ROOT_TESTS
in_user_session "pytest as kernelext-test in its systemd user manager" "timeout ${JOB_PYTEST_TIMEOUT:-1500} \
    .venv/bin/python -m pytest -p no:cacheprovider -o addopts= -q -rs --timeout 600 --durations=10 $(echo $USER_TESTS)"
