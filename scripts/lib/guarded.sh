# Sourced by scripts/test. `guarded LIMIT_SECONDS COMMAND...` runs one step of the test command in its
# own process group. If the step is still running after LIMIT seconds, it prints what was in flight
# (the Swift tests that started and never finished, the processes still alive, and the thread stacks of
# the test runner when ptrace is allowed), then stops the whole group and returns 124. A hang then
# fails CI with a reason within minutes instead of running out CI's clock with nothing to show.
# GUARD_EXTRA_LOG: a log the step writes itself (the sanitizer runs), read like its output.

guarded() {
    local limit=$1; shift
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/stoke-step-XXXXXX")
    # Job control on for this one start: the step gets its own process group (so it can be stopped as a
    # whole), and unlike a plain `&` in a script it does not start with SIGINT ignored, which tests that
    # send SIGINT to themselves (Ctrl-C handling) depend on.
    set -m
    STEP_LOG=$log bash -o pipefail -c '"$@" 2>&1 | tee -a "$STEP_LOG"' guarded-step "$@" &
    local pid=$! waited=0
    set +m
    while kill -0 "$pid" 2>/dev/null; do
        sleep 2
        waited=$((waited + 2))
        if [ "$waited" -ge "$limit" ]; then
            guarded_report "$pid" "$limit" "$log" "$*"
            kill -TERM -- "-$pid" 2>/dev/null || true
            sleep 10
            kill -KILL -- "-$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            rm -f "$log"
            return 124
        fi
    done
    local status=0
    wait "$pid" || status=$?
    rm -f "$log"
    return "$status"
}

guarded_report() {
    local group=$1 limit=$2 log=$3 command=$4
    echo "scripts/test: '$command' was still running after $limit s; stopping it. In flight:" >&2
    python3 - "$log" ${GUARD_EXTRA_LOG:-} <<'PY' >&2 || true
import re, sys
started, ended = {}, set()
for path in sys.argv[1:]:
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.search(r'◇ Test "(.*)" started\.', line)
        if m and not line.lstrip().startswith("◇ Test case"):
            started.setdefault(m.group(1), line)
        m = re.search(r'[✔✘] Test "(.*?)" (?:passed|failed|with \d+ test case|recorded)', line)
        if m:
            ended.add(m.group(1))
open_tests = [name for name in started if name not in ended]
print(f"  Swift tests started and not finished: {len(open_tests)}")
for name in open_tests:
    print(f"    {name}")
PY
    echo "  processes still running:" >&2
    ps -o pid,etimes,args --forest -p "$(pgrep -d, -g "$group")" 2>/dev/null | sed 's/^/    /' | cut -c1-220 >&2 || true
    if command -v gdb >/dev/null; then
        local runner
        for runner in $(pgrep -g "$group" -f 'xctest|swiftpm-testing-helper|PackageTests' || true); do
            echo "  thread stacks of process $runner:" >&2
            timeout 120 gdb -batch -nx -p "$runner" -ex 'thread apply all bt 14' 2>/dev/null \
                | grep -E '^(Thread|#)' | head -n 400 | sed 's/^/    /' | cut -c1-220 >&2 || true
        done
    fi
}
