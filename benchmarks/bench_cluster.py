"""
LegacyStatus on a real cluster (tests/cluster.py): PostgreSQL, a crossbar
router, masters A and B started with `buildbot start`, one worker on A.

 - Overhead: one build writing BUILD_MB of stdout on A, in a cluster
   without LegacyStatus (the anchor) and in one with it on both masters,
   all running, in ROUNDS rounds of one build each, each build once the
   machine is idle; the ratio of the build's wall times (from writing its
   output to the build complete in the database), against the mean of
   two clusters without LegacyStatus (the anchor and a second one).  A
   shared 2-core machine changes speed by a fifth and more from one
   minute to the next (two clusters both without LegacyStatus took 8.1 s
   to 10.1 s for the same build), so each round's builds run back to
   back, their order turning from round to round, and the figure is the
   median of the rounds' ratios; the rounds' range and the ratio of the
   fastest builds are printed beside it, and 90% bootstrap intervals of
   the median and of the ratio of the summed times below it.  A cluster
   also keeps some speed of its own for as long as it runs, so the
   rounds are run in SETS sets of three clusters, each set started
   afresh.  The receivers follow every log and note when each chunk
   came; they flush what they note with the next event that is not a
   logChunk.
 - The same figures for the second cluster without LegacyStatus against
   the anchor: what the machine's noise alone makes of a ratio, so that
   the first figure can be read against it.
 - Delay from A's database to each master's receiver: a trigger on
   logchunks notes when each chunk was inserted (PostgreSQL's clock, the
   machine's); the receivers note when each logChunk came, and the number
   that starts its first line says which chunk it is.
 - CPU time per build (user and system, from /proc) of each part of
   the clusters: master A, master B, the worker, PostgreSQL's server
   and crossbar, each with the processes it started; the medians over
   the builds without LegacyStatus and over those with it, and their
   differences.  Steadier than the wall times on a machine whose speed
   wanders: it says where LegacyStatus's cost lies.
   Beside each build's wall time, its CPU seconds and the machine's
   steal meanwhile (the CPU time a virtual machine's host took from it),
   which tells the rounds the host slowed.
 - The bridge's log reads on PostgreSQL under two builds at once (both
   builders, CONCURRENT_MB each), on each master: reads per second and
   their p99, as LogReader counts them and logs them when the master
   stops (the masters are restarted before, so the figures are of these
   builds alone).

Targets: wall time ratio <= 1.05.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# tests.cluster imports buildbot.test, which makes every warning an error
# in this process: what warns on import (passlib's use of crypt, under
# buildbot.master) is imported before it, and the filters are reset after.
import buildbot.master  # noqa: F401

from benchmarks.figures import CLOCK_TICKS, bootstrap_interval, machine_seconds, percentile
from tests.cluster import Build, Cluster, Master, unavailable
from tests.processes import stat_fields, wait_for

warnings.resetwarnings()

BUILD_MB = 50
# Sets of three clusters started afresh, each for as many rounds of one
# build of BUILD_MB in each cluster as there are clusters, so that in each
# set each cluster goes first, second and last once.  Two clusters both
# without LegacyStatus, the same for a whole run, came out from 0.88x to
# 1.07x apart over 12 rounds in single runs: a cluster keeps some speed
# of its own for as long as it runs, and only fresh clusters average it
# out.
SETS = 4
# The receivers on both masters follow every log and note each logChunk's
# arrival with this much of its text (its line number): writing every byte
# as JSON, as the tests' receivers do, costs as much as the bridge itself.
RECORDED_HEAD = 16
CONCURRENT_MB = 15
# Idle: under this many cores busy over IDLE_SECONDS, within IDLE_TRIES tries.
IDLE_CORES = 0.1
IDLE_SECONDS = 0.5
IDLE_TRIES = 600
LINE_BYTES = 100  # "<8-digit number> " + text + newline
# The step's output goes out in commands of this many lines each.
LINES_PER_COMMAND = 640
BUILD_TIMEOUT = 300.0
READS = re.compile(
    r"LegacyStatus: (\d+) log reads in ([\d.]+) s \(([\d.]+)/s\), ([\d.]+) s reading;"
    r" duration p50 ([\d.]+) ms p99 ([\d.]+) ms max ([\d.]+) ms"
)

CHUNK_TIMES = """
CREATE TABLE bench_chunk_times (
    logid integer, first_line integer, last_line integer, at double precision);
CREATE FUNCTION bench_note_chunk() RETURNS trigger AS $$
BEGIN
    INSERT INTO bench_chunk_times
        VALUES (NEW.logid, NEW.first_line, NEW.last_line, extract(epoch FROM clock_timestamp()));
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_note_chunk AFTER INSERT ON logchunks
    FOR EACH ROW EXECUTE FUNCTION bench_note_chunk();
"""


def start_cluster(legacy_status: bool) -> Cluster:
    cluster = Cluster(legacy_status=legacy_status, text_head=RECORDED_HEAD)
    cluster.start()
    cluster.query(CHUNK_TIMES + "SELECT 1")
    return cluster


def wait_until_idle() -> None:
    """
    Until the machine is idle: a build's aftermath (Buildbot compressing
    the log's chunks in the database, the spool compressed) must not
    fall in the next build's time.  Nor the kernel's writing back of what
    it wrote (the spools, PostgreSQL's files), which it starts up to 30 s
    later and which is no CPU time: that is written first.
    """
    os.sync()

    def busy() -> float:
        spent = machine_seconds()
        return sum(spent[kind] for kind in ("user", "nice", "system", "irq", "softirq", "steal"))

    for _ in range(IDLE_TRIES):
        before = busy()
        time.sleep(IDLE_SECONDS)
        if busy() - before < IDLE_SECONDS * IDLE_CORES:
            return
    raise RuntimeError("the machine never went idle between builds")


def cpu_seconds(cluster: Cluster) -> dict[str, float]:
    """
    The CPU seconds each part of C{cluster} has used so far, the processes
    it started included: those still running (PostgreSQL's backends,
    crossbar's router), and those it has waited for (a step's command on
    the worker).
    """
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        fields = stat_fields(entry) if entry.isdigit() else []
        if not fields:
            continue  # not a process, or gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
        # utime and stime, then cutime and cstime: its children's it waited for.
        used[int(entry)] = sum(int(field) for field in fields[11:15]) / CLOCK_TICKS

    def tree(pid: int | None) -> float:
        if pid is None:
            return 0.0
        return used.get(pid, 0.0) + sum(tree(child) for child in children.get(pid, []))

    assert cluster.crossbar.process is not None
    return {
        "master A": tree(cluster.a.pid()),
        "master B": tree(cluster.b.pid()),
        "worker": tree(cluster.worker.pid()),
        "PostgreSQL": tree(cluster.database.postmaster_pid()),
        "crossbar": tree(cluster.crossbar.process.pid),
    }


def write_output(build: Build, megabytes: int) -> None:
    """The build's C{live} step writes C{megabytes} of numbered lines, then ends."""
    total = megabytes * 1024 * 1024 // LINE_BYTES
    filler = "x" * (LINE_BYTES - 10)
    commands = []
    for first in range(0, total, LINES_PER_COMMAND):
        text = "".join(
            f"{i:08d} {filler}\n" for i in range(first, min(total, first + LINES_PER_COMMAND))
        )
        commands.append(json.dumps(["o", text]))
    commands.append(json.dumps(["end", 0]))
    with open(build.control.path, "w", encoding="utf-8") as f:
        f.write("\n".join(commands) + "\n")


def run_builds(cluster: Cluster, builders: list[str], megabytes: int) -> tuple[list[Build], float]:
    """Builds of C{builders} at once; their seconds from writing their output to all complete."""
    builds = [cluster.force(builder) for builder in builders]
    started = time.monotonic()
    for build in builds:
        write_output(build, megabytes)
    for build in builds:
        wait_for(lambda b=build: cluster.build_complete(b), f"{build} to end", BUILD_TIMEOUT)
    return builds, time.monotonic() - started


def delays(cluster: Cluster, master: Master, build: Build) -> list[float]:
    """For each logChunk of C{build}'s live log on C{master}: received - its chunk's insert."""
    found = cluster.log_row(build, "live", "stdio")
    assert found is not None
    logid = found[0]
    # The rows appendLog inserted, in order (compressing a finished log
    # inserts rows again, later).
    first_lines: list[int] = []
    inserted: list[float] = []
    expected = 0
    for first_line, last_line, at in cluster.query(
        "SELECT first_line, last_line, at FROM bench_chunk_times WHERE logid = %s ORDER BY at",
        logid,
    ):
        if first_line == expected:
            first_lines.append(first_line)
            inserted.append(at)
            expected = last_line + 1
    # Database line of the output's line 0 (header lines come before it).
    offset = cluster.db_content(build).split("\n").index(f"o{0:08d} " + "x" * (LINE_BYTES - 10))
    samples = []
    for e in master.events():
        if (
            e["event"] == "logChunk"
            and e.get("build") == build.number
            and e["builder"] == build.builder
            and e["step"] == "live"
            and e["channel"] == 0
            and e["text"][:8].isdigit()
        ):
            line = int(e["text"][:8]) + offset
            samples.append(e["received"] - inserted[bisect.bisect_right(first_lines, line) - 1])
    return samples


def restart_masters(cluster: Cluster) -> None:
    """Both masters stopped and started again, the worker back on A."""
    for master in (cluster.b, cluster.a):
        master.stop()
    for master in (cluster.a, cluster.b):
        master.start()
    wait_for(cluster.worker_connected, "the worker to connect to master A again")


def read_figures(master: Master) -> tuple[float, ...]:
    """What the master's LogReader logged as it stopped last."""
    with open(Path(master.basedir, "twistd.log"), encoding="utf-8", errors="replace") as f:
        found = READS.findall(f.read())
    assert found, f"{master} logged no log read figures"
    return tuple(float(x) for x in found[-1])


# The clusters of each round, by what they are: LegacyStatus on both masters
# or on neither.
ANCHOR, AGAIN, LEGACY = "without LegacyStatus", "again without it", "with it on both masters"
KINDS = (ANCHOR, AGAIN, LEGACY)
ROUNDS = SETS * len(KINDS)


def main() -> None:
    why = unavailable()
    if why is not None:
        sys.exit(f"bench_cluster: cannot run: {why}")

    clusters: dict[str, Cluster] = {}
    took: dict[str, list[float]] = {kind: [] for kind in KINDS}
    # Each part's CPU seconds in each build, and the host's steal meanwhile.
    cpu: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    steal: dict[str, list[float]] = {kind: [] for kind in KINDS}
    try:
        for _ in range(SETS):
            if clusters:  # the set before's
                for kind in KINDS:
                    clusters.pop(kind).stop()
            for kind in KINDS:
                clusters[kind] = start_cluster(legacy_status=kind == LEGACY)
            for turn in range(len(KINDS)):
                for kind in KINDS[turn:] + KINDS[:turn]:
                    wait_until_idle()
                    before = cpu_seconds(clusters[kind])
                    stolen = machine_seconds()["steal"]
                    builds, seconds = run_builds(clusters[kind], ["b1"], BUILD_MB)
                    after = cpu_seconds(clusters[kind])
                    took[kind].append(seconds)
                    cpu[kind].append({part: after[part] - before[part] for part in before})
                    steal[kind].append(machine_seconds()["steal"] - stolen)
                    if kind == LEGACY:
                        (build,) = builds
        cluster = clusters[LEGACY]
        for kind in (ANCHOR, AGAIN):
            clusters.pop(kind).stop()
        # every byte reached B before its delays count
        wait_for(
            lambda: any(
                e["event"] == "buildFinished" and e.get("build") == build.number
                for e in cluster.b.events()
            ),
            "B's receiver to hear the build finish",
            BUILD_TIMEOUT,
        )
        on_a = delays(cluster, cluster.a, build)
        on_b = delays(cluster, cluster.b, build)
        restart_masters(cluster)
        _, concurrent = run_builds(cluster, ["b1", "b2"], CONCURRENT_MB)
        cluster.b.stop()
        cluster.a.stop()
        reads = {m.name: read_figures(m) for m in (cluster.a, cluster.b)}
    finally:
        for started in clusters.values():
            started.stop()

    ms = 1000
    print(
        f"bench_cluster: PostgreSQL, crossbar, two masters; a build of {BUILD_MB} MB of stdout"
        f" on master A, in three clusters, {ROUNDS} rounds in {SETS} sets of fresh clusters"
    )
    print("  (each build: its wall time; its CPU seconds, all parts; the host's steal meanwhile)")
    for number in range(ROUNDS):
        print(
            f"  round {number + 1} (set {number // len(KINDS) + 1}):"
            + "   ".join(
                f" {kind} {took[kind][number]:.2f} s"
                f" ({sum(cpu[kind][number].values()):.1f} s, {steal[kind][number]:.1f} s)"
                for kind in KINDS
            )
        )
    # Against the mean of the two clusters without it: the anchors' own
    # noise counts half.
    mean_without = [(one + two) / 2 for one, two in zip(took[ANCHOR], took[AGAIN], strict=True)]
    print_ratio(
        f"{LEGACY} / without (the two's mean)", list(zip(mean_without, took[LEGACY], strict=True))
    )
    print_ratio(
        f"{AGAIN} / {ANCHOR}, the machine's noise alone",
        list(zip(took[ANCHOR], took[AGAIN], strict=True)),
        target=False,
    )
    print(f"  CPU seconds per build, medians: without LegacyStatus (both) / {LEGACY} (difference)")
    builds_without = cpu[ANCHOR] + cpu[AGAIN]
    parts = {
        part: [statistics.median(c[part] for c in runs) for runs in (builds_without, cpu[LEGACY])]
        for part in cpu[ANCHOR][0]
    }
    parts["all"] = [
        statistics.median(sum(c.values()) for c in runs) for runs in (builds_without, cpu[LEGACY])
    ]
    for part, (without, with_legacy) in parts.items():
        print(f"    {part}: {without:.2f} / {with_legacy:.2f} s ({with_legacy - without:+.2f} s)")
    for name, samples in (("A (the build's master)", on_a), ("B (the other master)", on_b)):
        print(
            f"  A's database -> receiver on {name}: p50 {statistics.median(samples) * ms:.0f} ms"
            f"  p99 {percentile(samples, 0.99) * ms:.0f} ms over {len(samples)} chunks"
        )
    print(
        f"  two builds of {CONCURRENT_MB} MB at once: {concurrent:.2f} s; the bridge's log reads:"
    )
    for name, (count, span, rate, _, p50, p99, slowest) in reads.items():
        print(
            f"    master {name}: {count:.0f} reads in {span:.1f} s, {rate:.1f}/s;"
            f" duration p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {slowest:.1f} ms"
        )


def print_ratio(name: str, rounds: list[tuple[float, float]], target: bool = True) -> None:
    """The ratio of each round's second time to its first: median, range, intervals."""
    ratios = sorted(second / first for first, second in rounds)
    median_low, median_high = bootstrap_interval(
        rounds, lambda some: statistics.median(s / f for f, s in some)
    )
    summed = sum(s for _, s in rounds) / sum(f for f, _ in rounds)
    summed_low, summed_high = bootstrap_interval(
        rounds, lambda some: sum(s for _, s in some) / sum(f for f, _ in some)
    )
    fastest_first = min(first for first, _ in rounds)
    fastest_second = min(second for _, second in rounds)
    print(
        f"  {name}: median of the rounds' ratios {statistics.median(ratios):.2f}x"
        + ("  (target <= 1.05x)" if target else "")
        + f"; rounds {ratios[0]:.2f}x-{ratios[-1]:.2f}x;"
        f" fastest builds {fastest_second:.2f} s / {fastest_first:.2f} s ="
        f" {fastest_second / fastest_first:.2f}x"
    )
    print(
        f"    90% bootstrap intervals: median {median_low:.2f}x-{median_high:.2f}x;"
        f" ratio of the summed times {summed:.2f}x ({summed_low:.2f}x-{summed_high:.2f}x)"
    )


if __name__ == "__main__":
    main()
